"""The model registry: menu order, labels from settings, and no network or credentials needed to build."""

from chatapp.models import PROVIDERS, GeminiModel, OpenAICompatModel, WakingModel, build_models
from chatapp.settings import load_settings
from tests.fixtures.model_servers import use_gemini_env


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
