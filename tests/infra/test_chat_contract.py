"""The two halves agree: the environment the stack renders for the chat is what the chat's own loader accepts,
and the defaults both halves write down are the same values.

`stack/` never imports `chatapp/`; this test imports both, so a renamed variable, a value the chat rejects or
a default changed on one side only fails here instead of in `kubectl logs`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from chatapp.conversation import PROMPT_IMAGES
from chatapp.models.openai_compat import OpenAICompatModel
from chatapp.settings import Settings, load_settings
from stack import kube, presets
from stack.config import DEFAULTS
from stack.gemma import server_args
from stack.mocks import FAKE_PROJECT_NUMBER

PLANS = ("default_plan", "gemma_off_plan", "scaled_plan", "password_plan")
# Read by libraries, not by chatapp/settings.py: google-genai (Vertex AI switch and location), and $HOME for
# anything that caches.
FOR_LIBRARIES = {"GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_LOCATION", "HOME"}
# Stand-ins for values the pod reads from Secrets (the plan shows only a secretKeyRef).
SECRET_VALUES = {
    ("chat-auth", "users"): "alice:wonderland-secret",
    ("chat-secret-key", "key"): "k" * 48,  # a RandomPassword of 48 letters and digits
}


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers which variables the loader asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.values.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def pod_environment(plan) -> dict[str, str]:
    (container,) = plan.manifest("Deployment", "chat")["spec"]["template"]["spec"]["containers"]
    env = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = SECRET_VALUES[(ref["name"], ref["key"])]
    return env


@pytest.mark.parametrize("which", PLANS)
def test_the_chat_accepts_the_environment_the_stack_renders(which, request):
    env = RecordingEnv(pod_environment(request.getfixturevalue(which)))
    settings = load_settings(env)  # raises SettingsError naming the variable if the chat would refuse to start
    unread = set(env.values) - env.read - FOR_LIBRARIES
    assert not unread, f"the stack sets variables the chat never reads: {sorted(unread)}"
    assert settings.store == "firestore"
    assert settings.self_hosted_url == kube.GEMMA_URL
    assert settings.port == kube.CHAT_PORT
    assert settings.concurrency == kube.CHAT_CONCURRENCY
    assert settings.request_timeout_s == kube.CHAT_REQUEST_TIMEOUT_S
    assert settings.self_hosted_label != settings.gemini_label
    assert settings.trusted_proxy is True  # always behind Google's load balancer
    if which == "password_plan":
        assert (settings.auth, settings.auth_users) == ("password", {"alice": "wonderland-secret"})
    else:
        assert (settings.auth, settings.auth_users) == ("iap", {})
        assert settings.iap_audience == f"/projects/{FAKE_PROJECT_NUMBER}/global/backendServices/"
    # The daily limit reaches the chat only when configured.
    assert settings.daily_tokens == (50_000 if which == "scaled_plan" else None)


def test_the_rendered_environment_overrides_a_hostile_default(default_plan):
    # Guard against the test above passing because the loader ignores its argument and reads os.environ.
    env = pod_environment(default_plan)
    env["CHAT_CONCURRENCY"] = "not-a-number"
    with pytest.raises(ValueError, match="CHAT_CONCURRENCY"):
        load_settings(env)


def test_the_gemini_location_is_the_keys_not_the_clusters(default_plan):
    # Gemini 3.x answers at `global`; the plan's region is europe-west4.
    assert pod_environment(default_plan)["GOOGLE_CLOUD_LOCATION"] == DEFAULTS["geminiLocation"] == "global"


# One model default each: the stack's Pulumi.yaml/presets and the chat's settings name the same ids.
def test_model_defaults_agree():
    chat = Settings()
    assert presets.PRESETS[str(DEFAULTS["gemmaModel"])].model == chat.self_hosted_model
    assert DEFAULTS["geminiModel"] == chat.gemini_model


def test_database_default_agrees():
    assert DEFAULTS["firestoreDatabase"] == Settings().firestore_database


def test_images_per_prompt_agree():
    # vLLM's --limit-mm-per-prompt must accept every image the chat sends in one prompt.
    assert presets.PROMPT_IMAGES == PROMPT_IMAGES


def test_concurrency_agrees_everywhere():
    chat = Settings()
    assert chat.concurrency == kube.CHAT_CONCURRENCY
    # vLLM batches as many sequences as one chat replica lets through.
    assert f"--max-num-seqs={kube.CHAT_CONCURRENCY}" in server_args(presets.PRESETS[presets.DEFAULT_PRESET])
    # The self-hosted client's connection pool, when built without settings, holds as many streams.
    pool = inspect.signature(OpenAICompatModel.__init__).parameters["max_connections"].default
    assert pool == chat.concurrency


def test_request_timeout_and_port_agree():
    chat = Settings()
    assert chat.request_timeout_s == kube.CHAT_REQUEST_TIMEOUT_S
    assert chat.port == kube.CHAT_PORT
