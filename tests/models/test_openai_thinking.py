"""The self-hosted model's options, its `reasoning` deltas kept apart from the answer, and the model lookup
(`GET /v1/models`) that notices an id the server does not serve."""

from __future__ import annotations

import pytest

from chatapp.models.base import GenerationParams
from chatapp.models.openai_compat import OpenAICompatModel
from tests.models.helpers import ask, collect

REASONING = "SECRET-REASONING the person greets me, so I greet back"


def model(fake, model_id: str | None = None) -> OpenAICompatModel:
    return OpenAICompatModel("Gemma Test", fake.base_url, model_id or fake.model, timeout_s=10)


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_deltas_are_thinking_never_the_answer(fake_openai, field):
    fake_openai.reasoning, fake_openai.reasoning_field = REASONING, field
    fake_openai.reply = "Hello there."
    chunks, stats, error = collect(model(fake_openai), ask("hi"))
    assert error is None
    assert "".join(chunks) == "Hello there."
    assert stats.thinking == REASONING
    # vLLM counts reasoning tokens in completion_tokens: thinking is output.
    assert stats.tokens_out == len(REASONING.split()) + 2


def test_gemma_4_offers_thinking_off_and_on_and_asks_its_template_only_when_on(fake_openai):
    gemma = model(fake_openai, "google/gemma-4-12b-it")
    assert gemma.options.thinking_levels == ("off", "on") and gemma.options.thinking == "off"
    collect(gemma, ask("a"), gemma.options.relative(GenerationParams(0.7, 0.95, 32, "off")))
    collect(gemma, ask("b"), GenerationParams(0.7, 0.95, 32, "on"))
    untouched, thinking = fake_openai.chat_requests()
    assert "chat_template_kwargs" not in untouched
    assert thinking["chat_template_kwargs"] == {"enable_thinking": True}
    # The self-hosted slot sends its defaults explicitly: servers' own defaults differ.
    assert (untouched["temperature"], untouched["top_p"]) == (0.7, 0.95)


def test_other_models_have_no_thinking_control(fake_openai):
    assert model(fake_openai, "google/gemma-3-12b-it").options.thinking_levels == ()


def test_the_lookup_finds_the_served_model(fake_openai):
    assert model(fake_openai).check() is None
    assert fake_openai.requests[-1]["path"] == "/v1/models"


def test_an_id_the_server_does_not_serve_is_named_with_the_setting_that_fixes_it(fake_openai):
    reason = model(fake_openai, "google/gemma-4-31b-it").check()
    assert reason == (
        "retired or unknown model id google/gemma-4-31b-it: set SELF_HOSTED_MODEL (gemmaModel) "
        "(the server serves fake-model)"
    )


def test_a_message_to_an_unknown_id_says_the_same(fake_openai):
    fake_openai.strict_model = True  # vLLM answers an id it does not serve with 404
    _, _, error = collect(model(fake_openai, "google/gemma-4-31b-it"), ask("hi"))
    assert "retired or unknown model id google/gemma-4-31b-it: set SELF_HOSTED_MODEL (gemmaModel)" in str(error)
    assert "does not exist" in str(error)


def test_a_loading_server_is_still_starting(fake_openai):
    fake_openai.mode = "loading"
    assert model(fake_openai).check() == "still starting (HTTP 503)"
