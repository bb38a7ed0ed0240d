"""No secret in plain text: the JSON dump carries secrets only as hashes, so any plaintext hit is a leak."""

import pulumi

from stack.chat import BROWSER_SECRET_LENGTH
from stack.mocks import FAKE_ACCESS_TOKEN, RecordingMocks, fake_random_password, is_secret
from tests.infra.rendering import HF_TOKEN, config_args, run_render


def test_hf_token_in_no_input_or_output(default_plan, scaled_plan):
    for plan in (default_plan, scaled_plan):
        assert HF_TOKEN not in plan.raw
        assert FAKE_ACCESS_TOKEN not in plan.raw


BROWSER_SECRET = fake_random_password(BROWSER_SECRET_LENGTH)


def test_browser_secret_in_no_input_or_output(default_plan, gemma_off_plan, scaled_plan):
    for plan in (default_plan, gemma_off_plan, scaled_plan):
        # A prefix too: a truncated or re-encoded copy must not slip through either.
        assert BROWSER_SECRET[:16] not in plan.raw


def test_mocks_mark_declared_secret_outputs_like_the_engine():
    mocks = RecordingMocks()
    typ = "random:index/randomPassword:RandomPassword"
    mocks.secret_outputs[(typ, "pw")] = frozenset({"result"})
    args = pulumi.runtime.MockResourceArgs(typ=typ, name="pw", inputs={"length": 8.0}, provider=None, custom=True)
    _, state = mocks.new_resource(args)
    assert is_secret(state["result"])
    assert not is_secret(state["length"])


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
    assert BROWSER_SECRET[:16] not in result.stdout + result.stderr
    assert "token: '[secret]'" in result.stdout
    assert "secret: '[secret]'" in result.stdout
