"""No secret in plain text: the JSON dump carries secrets only as hashes, so any plaintext hit is a leak."""

import pulumi

from stack.mocks import FAKE_ACCESS_TOKEN, RecordingMocks, is_secret
from tests.infra.rendering import HF_TOKEN, IAP_CLIENT_SECRET, config_args, run_render


def test_hf_token_in_no_input_or_output(default_plan, scaled_plan):
    for plan in (default_plan, scaled_plan):
        assert HF_TOKEN not in plan.raw
        assert FAKE_ACCESS_TOKEN not in plan.raw


def test_oauth_client_secret_in_no_input_or_output(scaled_plan):
    # A prefix too: a truncated or re-encoded copy must not slip through either.
    assert IAP_CLIENT_SECRET[:16] not in scaled_plan.raw


def test_mocks_mark_declared_secret_outputs_like_the_engine():
    mocks = RecordingMocks()
    typ = "example:index/thing:Thing"
    mocks.secret_outputs[(typ, "t")] = frozenset({"token"})
    inputs = {"token": "generated", "length": 8.0}
    args = pulumi.runtime.MockResourceArgs(typ=typ, name="t", inputs=inputs, provider=None, custom=True)
    _, state = mocks.new_resource(args)
    assert is_secret(state["token"])
    assert not is_secret(state["length"])


def test_login_users_in_no_input_or_output(password_plan):
    assert "wonderland-secret" not in password_plan.raw


def test_kubeconfig_output_is_secret(default_plan):
    assert "kubeconfig" in default_plan.data["secretOutputs"]
    assert set(default_plan.outputs["kubeconfig"]) == {"secret-sha256"}


def test_plan_text_never_prints_secrets():
    plain = {"gcp:project": "p", "frontDoor": "password"}
    result = run_render(*config_args(plain, {"hfToken": HF_TOKEN, "chatAuthUsers": "a:pw-secret"}))
    assert result.returncode == 0, result.stderr
    assert HF_TOKEN not in result.stdout + result.stderr
    assert "pw-secret" not in result.stdout + result.stderr
    assert "token: '[secret]'" in result.stdout
    assert "users: '[secret]'" in result.stdout
