"""What a person sees of a self-hosted (OpenAI-compatible) reply, each promise pinned by the observable result (the
reply text, the usage recorded, the sentence shown), against the fault-injecting vLLM-shaped server."""

from __future__ import annotations

import pytest

from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, StreamCut
from chatapp.models.context_window import WHAT_TO_DO, ContextTooLong
from chatapp.models.openai_compat import OpenAICompatModel
from harness.fakes.openai_server import FakeOpenAIServer
from harness.support import free_port
from tests.models.helpers import ask, collect

LABEL = "Gemma Test"


def model_for(fake: FakeOpenAIServer, **kwargs) -> OpenAICompatModel:
    return OpenAICompatModel(LABEL, fake.base_url, fake.model, **kwargs)


def test_the_servers_completion_count_wins_over_the_deltas_counted(fake_openai):
    fake_openai.reply = "one two three four"
    fake_openai.completion_tokens = 9
    chunks, stats, error = collect(model_for(fake_openai), ask("count"))
    assert error is None and chunks == ["one", " two", " three", " four"]
    assert stats.tokens_out == 9


# -- llama-cpp-python's empty stream ---------------------------------------------------------------------------
def test_an_overflow_hidden_in_an_empty_stream_is_asked_again_without_streaming(fake_openai):
    fake_openai.mode = "too_long_empty_stream"
    chunks, _, error = collect(model_for(fake_openai), ask("a long one"), GenerationParams(max_tokens=16))
    assert chunks == [] and isinstance(error, ContextTooLong)
    assert str(error) == (
        f"Your message is too long for {LABEL}: it reads at most 4,096 tokens at once, and this request has 9,000 "
        f"(your message, the earlier turns sent with it and the system prompt). {WHAT_TO_DO}"
    )
    streamed, probe = fake_openai.chat_requests()
    # The same request, not streamed, for one token: the reason costs the server next to nothing.
    assert probe == {k: v for k, v in streamed.items() if k not in ("stream", "stream_options")} | {"max_tokens": 1}


def test_an_empty_stream_that_is_no_overflow_says_it_ended_early(fake_openai):
    fake_openai.mode = "empty_stream"
    chunks, _, error = collect(model_for(fake_openai), ask("hi"))
    assert chunks == [] and isinstance(error, StreamCut)
    assert str(error) == f"{LABEL} stopped before finishing the reply (the stream ended early)."
    assert len(fake_openai.chat_requests()) == 2


def test_an_empty_stream_from_a_server_gone_meanwhile_says_it_ended_early(fake_openai):
    """The probe cannot be sent (the server went away after its empty stream): the first reason stands."""
    fake_openai.mode = "empty_stream"
    model = model_for(fake_openai)
    post = model._session.post

    def then_stop(*args, **kwargs):
        response = post(*args, **kwargs)
        fake_openai.stop()
        return response

    model._session.post = then_stop
    _, _, error = collect(model, ask("hi"))
    assert str(error) == f"{LABEL} stopped before finishing the reply (the stream ended early)."


# -- the sentences a person reads ------------------------------------------------------------------------------
def test_a_server_that_is_down_is_unavailable_and_says_what_to_do():
    model = OpenAICompatModel("My Gemma", f"http://127.0.0.1:{free_port()}/v1", "m")
    chunks, _, error = collect(model, ask("x"))
    assert chunks == [] and isinstance(error, ModelUnavailable)
    assert str(error) == (
        "My Gemma is not reachable (connection refused); it is probably still starting. Switch to another model "
        "or try again in a few minutes."
    )


@pytest.mark.parametrize(
    ("mode", "kind", "expected"),
    [
        (
            "loading",
            ModelUnavailable,
            f"{LABEL} is still starting (HTTP 503: Loading model); switch to another model or try again in a few "
            "minutes.",
        ),
        (
            "error_500",
            ModelError,
            f"{LABEL} failed with a server error (HTTP 500): CUDA error: an illegal memory access was encountered",
        ),
        ("bad_request", ModelError, f"{LABEL} rejected the request (HTTP 400): top_p must be in (0, 1], got 0.0."),
    ],
)
def test_a_refused_request_says_who_refused_and_the_servers_reason(fake_openai, mode, kind, expected):
    fake_openai.mode = mode
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert chunks == [] and type(error) is kind
    assert str(error) == expected


def test_an_id_the_server_does_not_serve_names_the_setting(fake_openai):
    fake_openai.strict_model = True
    model = OpenAICompatModel(LABEL, fake_openai.base_url, "google/gemma-9")
    _, _, error = collect(model, ask("x"))
    assert type(error) is ModelError
    assert str(error) == (
        f"{LABEL}: retired or unknown model id google/gemma-9: set SELF_HOSTED_MODEL (gemmaModel) "
        "(HTTP 404: The model `google/gemma-9` does not exist.)."
    )
    assert model.check() == (
        "retired or unknown model id google/gemma-9: set SELF_HOSTED_MODEL (gemmaModel) (the server serves fake-model)"
    )


def test_a_models_list_that_is_not_there_is_named_by_its_status(fake_openai):
    model = OpenAICompatModel(LABEL, fake_openai.base_url.removesuffix("/v1"), fake_openai.model)
    assert model.check() == "HTTP 404: Not Found"


def test_a_base_url_with_a_trailing_slash_reaches_the_same_paths(fake_openai):
    model = OpenAICompatModel(LABEL, f"{fake_openai.base_url}/", fake_openai.model)
    assert model.check() is None
    chunks, _, error = collect(model, ask("hi"))
    assert error is None and "".join(chunks) == "You said: hi"
    assert [r["path"] for r in fake_openai.requests] == ["/v1/models", "/v1/chat/completions"]


def test_a_server_that_never_starts_answering_says_how_long_it_waited(fake_openai):
    fake_openai.mode = "hang"
    _, _, error = collect(model_for(fake_openai, timeout_s=0.5), ask("x"))
    assert type(error) is ModelError and str(error) == f"{LABEL} did not start answering within 0.5 s."


# -- 429: the server's Retry-After, within the retry budget ----------------------------------------------------
def test_a_429_waits_the_retry_after_the_server_names(fake_openai):
    fake_openai.retry_after_s = 1.5  # longer than the first backoff (1 s), so waiting it shows
    fake_openai.queue("rate_limit")
    chunks, _, error = collect(model_for(fake_openai), ask("hi"))
    assert error is None and "".join(chunks) == "You said: hi"
    first, second = (r for r in fake_openai.requests if r["path"].endswith("/chat/completions"))
    assert second["time"] - first["time"] >= 1.5


def test_a_429_that_asks_for_longer_than_the_budget_is_reported_at_once(fake_openai):
    fake_openai.retry_after_s = 30
    fake_openai.mode = "rate_limit"
    _, _, error = collect(model_for(fake_openai, retry_budget_s=12), ask("x"))
    assert type(error) is ModelError
    assert str(error) == (
        f"{LABEL} is busy (HTTP 429: Too many requests, slow down) and asked to wait longer; try again in a minute."
    )
    assert len(fake_openai.chat_requests()) == 1
