"""The model registry: menu order, labels from settings, and no network or credentials needed to build."""

import pytest

from chatapp.models import PROVIDERS, GeminiModel, OpenAICompatModel, WakingModel, build_models
from chatapp.models.base import ModelUnavailable
from chatapp.settings import SettingsError, load_settings
from chatapp.status import ModelStatus
from harness.support import free_port
from tests.fixtures.model_servers import use_gemini_env
from tests.models.helpers import ask, collect

NOT_WAKING = {"SELF_HOSTED_WAKES_ON_DEMAND": "false"}


def test_build_models_keys_by_label_self_hosted_first(monkeypatch):
    use_gemini_env(monkeypatch, {})
    settings = load_settings(
        {"SELF_HOSTED_LABEL": "Local SmolLM2", "GEMINI_LABEL": "Gemini X", "SELF_HOSTED_URL": "http://127.0.0.1:9/v1"}
    )
    models = build_models(settings)
    assert list(models) == ["Local SmolLM2", "Gemini X"]
    assert isinstance(models["Local SmolLM2"], WakingModel)  # tracks whether the server is asleep
    assert isinstance(models["Local SmolLM2"].inner, OpenAICompatModel)
    assert isinstance(models["Gemini X"], GeminiModel)
    assert all(label == model.label for label, model in models.items())
    assert set(PROVIDERS) == {"openai_compat", "gemini"}


def test_unreachable_self_hosted_and_unconfigured_gemini_are_reported_by_check(monkeypatch):
    use_gemini_env(monkeypatch, {})
    models = build_models(load_settings({"SELF_HOSTED_URL": "http://127.0.0.1:9/v1"}))
    self_hosted, gemini = models.values()
    assert self_hosted.check() == "not reachable (connection refused)"
    reason = gemini.check()
    assert reason is not None and "GEMINI_API_KEY" in reason and "GOOGLE_GENAI_USE_VERTEXAI" in reason


def test_a_server_that_does_not_wake_on_demand_is_said_to_be_down_not_asleep(monkeypatch):
    # An always-on stack (gemmaIdleMinutes=0), a stack without Gemma, or `make dev`'s own llama.cpp: nothing
    # wakes the server, so "a message to it wakes it" would be a promise nobody keeps.
    use_gemini_env(monkeypatch, {})
    down = {"SELF_HOSTED_URL": f"http://127.0.0.1:{free_port()}/v1", "SELF_HOSTED_LABEL": "Gemma"}
    waking, always_on = (build_models(load_settings(down | wakes)) for wakes in ({}, NOT_WAKING))
    assert isinstance(waking["Gemma"], WakingModel) and isinstance(always_on["Gemma"], OpenAICompatModel)
    for models, said in ((waking, "💤 **Gemma**: asleep"), (always_on, "**Gemma**: not reachable")):
        status = ModelStatus(models)
        status.refresh()
        assert said in status.markdown()
    assert "asleep" not in status.markdown() and "wakes" not in status.markdown()
    *_, error = collect(always_on["Gemma"], ask("hi"))
    assert isinstance(error, ModelUnavailable) and "waking" not in str(error), error


def test_the_setting_reads_true_and_false_and_refuses_anything_else():
    assert load_settings({}).self_hosted_wakes is True
    assert load_settings(NOT_WAKING).self_hosted_wakes is False
    with pytest.raises(SettingsError, match="SELF_HOSTED_WAKES_ON_DEMAND must be true or false, got 'sometimes'"):
        load_settings({"SELF_HOSTED_WAKES_ON_DEMAND": "sometimes"})
