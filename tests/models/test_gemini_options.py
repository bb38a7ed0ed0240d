"""Gemini's own options (defaults left out of the request, thinking level, room for thinking), its thought
summaries kept apart from the answer, and the lookup that notices a retired model id before anyone sends a message.

All through the real google-genai SDK against the local server with Google's REST shape."""

from __future__ import annotations

import pytest

from chatapp.models.base import GenerationParams, ModelUnavailable
from chatapp.models.gemini import GeminiModel
from chatapp.models.gemini_request import THINKING_ROOM, gemini_options
from harness.fakes.vertex_server import RETIRED_2026
from tests.fixtures.model_servers import use_gemini_env
from tests.models.helpers import ask, collect

THOUGHTS = "SECRET-THOUGHT planning how to greet the person before answering"


def gemini(model_id: str = "gemini-3.8-flash", **kwargs) -> GeminiModel:
    return GeminiModel("Gemini Test", model_id, **kwargs)


def config_sent(fake_vertex) -> dict:
    [request] = fake_vertex.generate_requests()
    return request["body"]["generationConfig"]


def test_each_gemini_family_has_its_own_thinking_levels():
    assert gemini_options("gemini-3.8-flash").thinking_levels == ("low", "medium", "high")
    assert gemini_options("gemini-3.8-flash").thinking == "medium"
    assert gemini_options("gemini-3.5-flash").thinking_levels == ("minimal", "low", "medium", "high")
    assert gemini_options("gemini-3.1-flash-lite").thinking_levels == ("low", "high")  # any other 3.x
    old = gemini_options("gemini-2.5-flash")
    assert old.thinking_levels == () and old.thinking is None
    assert (old.temperature, old.top_p) == (1.0, 0.95)  # Google's defaults, so untouched means "not sent"


def test_untouched_controls_send_no_sampling_and_no_thinking_level(fake_vertex):
    """Gemini 3: temperature and top-p are left at the model's defaults unless the person changed them; the
    thinking level too. Thought summaries are asked for; max_output_tokens leaves room for the default level."""
    model = gemini()
    untouched = model.options.relative(GenerationParams(1.0, 0.95, 500, "medium"))
    _, _, error = collect(model, ask("hi"), untouched)
    assert error is None
    config = config_sent(fake_vertex)
    assert config == {
        "maxOutputTokens": 500 + THINKING_ROOM["medium"],
        "thinkingConfig": {"include_thoughts": True},
    }


def test_defaults_are_left_out_even_when_sent_as_values(fake_vertex):
    _, _, error = collect(gemini(), ask("hi"), GenerationParams(1.0, 0.95, 100))
    assert error is None
    assert "temperature" not in config_sent(fake_vertex) and "topP" not in config_sent(fake_vertex)


def test_a_chosen_thinking_level_is_sent_alone_never_with_a_budget(fake_vertex):
    _, _, error = collect(gemini(), ask("hi"), GenerationParams(max_tokens=200, thinking="high"))
    assert error is None
    config = config_sent(fake_vertex)
    assert config["thinkingConfig"] == {"include_thoughts": True, "thinking_level": "HIGH"}
    assert config["maxOutputTokens"] == 200 + THINKING_ROOM["high"]


def test_a_level_the_model_does_not_have_is_not_sent(fake_vertex):
    _, _, error = collect(gemini(), ask("hi"), GenerationParams(max_tokens=200, thinking="minimal"))
    assert error is None
    assert "thinking_level" not in config_sent(fake_vertex)["thinkingConfig"]


def test_the_fake_refuses_level_and_budget_together_as_gemini_3_does(fake_vertex):
    """Guards the guard: a request with both is a 400, so the tests above would catch a budget sneaking in."""
    model = gemini()
    client = model._get_client()
    from google.genai import errors, types

    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW, thinking_budget=128)
    )
    with pytest.raises(errors.ClientError) as caught:
        list(client.models.generate_content_stream(model=model.model_id, contents="hi", config=config))
    assert caught.value.code == 400


def test_thought_summaries_are_thinking_never_the_answer(fake_vertex):
    fake_vertex.thoughts = THOUGHTS
    fake_vertex.reply = "Hello Ada."
    chunks, stats, error = collect(gemini(), ask("hi"))
    assert error is None
    assert "".join(chunks) == "Hello Ada."
    assert stats.thinking == THOUGHTS
    # Thinking tokens are output too: the fake reports one per thought word in thoughtsTokenCount.
    assert stats.tokens_out == 2 + len(THOUGHTS.split())


def test_an_empty_answer_after_thinking_says_it_thought_its_budget_away(fake_vertex):
    fake_vertex.mode = "max_tokens_thinking"
    _, _, error = collect(gemini(), ask("x"), GenerationParams(max_tokens=100, thinking="low"))
    message = str(error)
    assert "used up the max tokens limit (4196 tokens: 100 for the answer, 4096 for thinking)" in message
    assert "Raise Max tokens or choose a lower Thinking level" in message


def test_a_known_model_is_looked_up_once_then_trusted(fake_vertex):
    model = gemini()
    assert model.check() is None
    assert model.check() is None
    lookups = [r for r in fake_vertex.requests if "/models/" in r["path"] and ":" not in r["path"]]
    # Vertex looks base models up with no project or location (the SDK's publishers.models.get).
    assert [r["path"] for r in lookups] == ["/v1beta1/publishers/google/models/gemini-3.8-flash"]


def test_a_retired_id_is_named_with_the_setting_that_fixes_it_before_any_message(fake_vertex):
    fake_vertex.retired = RETIRED_2026
    model = gemini("gemini-2.5-flash")
    sentence = "retired or unknown model id gemini-2.5-flash: set GEMINI_MODEL (geminiModel)"
    assert model.check() == sentence
    chunks, _, error = collect(model, ask("hi"))
    assert chunks == [] and isinstance(error, ModelUnavailable) and sentence in str(error)
    assert fake_vertex.generate_requests() == [], "a message was sent to a model already known to be retired"


def test_a_retired_id_with_an_api_key(fake_vertex, monkeypatch):
    use_gemini_env(monkeypatch, fake_vertex.api_key_env())
    fake_vertex.retired = RETIRED_2026
    assert gemini("gemini-2.5-flash").check() == (
        "retired or unknown model id gemini-2.5-flash: set GEMINI_MODEL (geminiModel)"
    )
    assert fake_vertex.requests[-1]["path"] == "/v1beta/models/gemini-2.5-flash"
    assert gemini().check() is None


def test_a_404_while_answering_names_the_model_and_a_regional_location(fake_vertex):
    """Without a lookup first (a status check not run yet), the reply's own 404 says the same, and on Vertex
    names the location too: a model not served in a region answers the same 404."""
    fake_vertex.retired = {"gemini-3.8-flash"}
    _, _, error = collect(gemini(location="us-central1"), ask("hi"))
    assert isinstance(error, ModelUnavailable)
    assert "retired or unknown model id gemini-3.8-flash: set GEMINI_MODEL (geminiModel)" in str(error)
    assert "not served in us-central1: set GOOGLE_CLOUD_LOCATION (geminiLocation)" in str(error)
    [request] = fake_vertex.generate_requests()
    assert "/locations/us-central1/" in request["path"]


def test_the_location_comes_from_the_setting_not_the_environment(fake_vertex, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")  # what the old stack passed (the cluster's region)
    collect(gemini(location="global"), ask("hi"))
    [request] = fake_vertex.generate_requests()
    assert "/locations/global/" in request["path"]
