"""No secret in plain text: the JSON dump carries secrets only as hashes, so any plaintext hit is a leak."""

from stack.mocks import FAKE_ACCESS_TOKEN
from tests.infra.rendering import HF_TOKEN, config_args, run_render


def test_hf_token_in_no_input_or_output(default_plan, scaled_plan):
    for plan in (default_plan, scaled_plan):
        assert HF_TOKEN not in plan.raw
        assert FAKE_ACCESS_TOKEN not in plan.raw


def test_login_users_in_no_input_or_output(scaled_plan):
    assert "wonderland-secret" not in scaled_plan.raw


def test_kubeconfig_output_is_secret(default_plan):
    assert "kubeconfig" in default_plan.data["secretOutputs"]
    assert set(default_plan.outputs["kubeconfig"]) == {"secret-sha256"}


def test_plan_text_never_prints_secrets():
    result = run_render(*config_args({"gcp:project": "p"}, {"hfToken": HF_TOKEN, "chatAuthUsers": "a:pw-secret"}))
    assert result.returncode == 0, result.stderr
    assert HF_TOKEN not in result.stdout + result.stderr
    assert "pw-secret" not in result.stdout + result.stderr
    assert "token: '[secret]'" in result.stdout
