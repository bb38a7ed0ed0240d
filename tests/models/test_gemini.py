"""GeminiModel through the real google-genai SDK against a local server with Vertex's REST shape."""

from __future__ import annotations

import logging
import time

import pytest

from chatapp.conversation import Message
from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, ReplyStats, StreamCut
from chatapp.models.gemini import GeminiModel
from chatapp.models.gemini_request import THINKING_ROOM
from harness.fakes.vertex_server import FAKE_TOKEN
from tests.fixtures.model_servers import use_gemini_env
from tests.models.helpers import PARAMS, ask, collect, waits_logged

GEMINI_LOGGER = "chatapp.models.gemini"

CONVERSATION = [
    Message("system", "Answer like a pirate."),
    Message("user", "My name is Ada."),
    Message("assistant", "Ahoy Ada!", model="Gemma"),
    Message("user", "What is my name?"),
]


def gemini(**kwargs) -> GeminiModel:
    return GeminiModel("Gemini Test", "gemini-3.8-flash", **kwargs)


def test_vertex_stream_sends_context_system_instruction_and_params(fake_vertex):
    model = gemini()
    assert model.check() is None
    chunks, stats, error = collect(model, CONVERSATION, GenerationParams(0.2, 0.8, 300))
    assert error is None and len(chunks) > 1
    assert "".join(chunks) == "You said: What is my name? (3 messages in context)"
    assert stats.finish_reason == "stop" and stats.tokens_in and stats.tokens_out == 10  # the fake counts words
    [request] = fake_vertex.generate_requests()
    path = "/v1beta1/projects/fake-project/locations/global/publishers/google/models/gemini-3.8-flash"
    assert request["path"] == f"{path}:streamGenerateContent?alt=sse"
    assert request["headers"]["Authorization"] == f"Bearer {FAKE_TOKEN}"
    body = request["body"]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][1]["parts"] == [{"text": "Ahoy Ada!"}]
    assert body["systemInstruction"]["parts"] == [{"text": "Answer like a pirate."}]
    # Changed from Gemini's defaults (1.0 / 0.95), so sent; Max tokens for the answer plus room for thinking.
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.8,
        "maxOutputTokens": 300 + THINKING_ROOM["medium"],
        "thinkingConfig": {"include_thoughts": True},  # google-genai's own spelling of this message's fields
    }


def test_api_key_mode(fake_vertex, monkeypatch):
    use_gemini_env(monkeypatch, fake_vertex.api_key_env("k-123"))
    chunks, _, error = collect(gemini(), ask("hi"))
    assert error is None and "".join(chunks) == "You said: hi (1 messages in context)"
    [request] = fake_vertex.generate_requests()
    assert request["path"] == "/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse"
    assert request["headers"]["x-goog-api-key"] == "k-123"


def test_no_credentials_is_unavailable_with_instructions_and_no_request(fake_vertex, monkeypatch):
    use_gemini_env(monkeypatch, {})
    model = gemini()
    assert "GEMINI_API_KEY" in (model.check() or "")
    chunks, _, error = collect(model, ask("hi"))
    assert chunks == [] and isinstance(error, ModelUnavailable)
    assert "Gemini Test is not configured" in str(error) and "GOOGLE_GENAI_USE_VERTEXAI=true" in str(error)
    assert fake_vertex.requests == []


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("safety", "gave no reply because its safety filters blocked the reply (SAFETY)"),
        ("prompt_blocked", "refused the prompt (SAFETY)"),
        (
            "max_tokens_thinking",
            "used up the max tokens limit (8256 tokens: 64 for the answer, 8192 for thinking) before writing any "
            "text: it spent them thinking. Raise Max tokens or choose a lower Thinking level",
        ),
        ("error_500", "server error (HTTP 500 INTERNAL: Internal error encountered.)"),
    ],
)
def test_empty_or_failed_replies_say_why(fake_vertex, mode, expected):
    fake_vertex.mode = mode
    chunks, _, error = collect(gemini(), ask("x"), PARAMS)
    assert chunks == [] and type(error) is ModelError
    assert expected in str(error)


def test_429_is_retried_then_succeeds(fake_vertex):
    fake_vertex.queue("rate_limit")
    chunks, _, error = collect(gemini(), ask("hi"))
    assert error is None and chunks
    assert len(fake_vertex.generate_requests()) == 2


def test_429_that_persists_is_reported_as_quota(fake_vertex, caplog):
    caplog.set_level(logging.INFO, GEMINI_LOGGER)
    fake_vertex.mode = "rate_limit"
    _, _, error = collect(gemini(retry_budget_s=1.5), ask("hi"))
    assert type(error) is ModelError and "quota is exhausted (429 RESOURCE_EXHAUSTED" in str(error)
    waited = waits_logged(caplog, GEMINI_LOGGER)
    assert sum(waited) <= 1.5  # never past the budget (the client's own backoff: 1 s, then 2 s)
    assert len(fake_vertex.generate_requests()) == len(waited) + 1  # one request after each wait, then it gave up


def test_cut_mid_stream_keeps_the_partial_text(fake_vertex):
    fake_vertex.mode = "cut"
    fake_vertex.reply = "one two three four five six seven eight nine ten eleven twelve"
    chunks, _, error = collect(gemini(), ask("x"))
    assert isinstance(error, StreamCut) and "broke mid-reply" in str(error)
    assert "".join(chunks).startswith("one two three")


REPLY = "one two three four five six seven eight nine ten eleven twelve"


@pytest.mark.parametrize(
    ("mode", "finish", "received", "why"),
    [
        ("no_finish", None, REPLY, "stopped before finishing the reply (the stream ended early)"),
        (
            "safety_after_text",
            "SAFETY",
            "one two three four five six",
            "stopped mid-reply because its safety filters blocked the reply",
        ),
        ("safety_after_text", "RECITATION", "one two three four five six", "would have recited copyrighted"),
        ("safety_after_text", "OTHER", "one two three four five six", "because of finish reason OTHER"),
    ],
)
def test_a_reply_cut_short_keeps_its_text_and_says_why(fake_vertex, mode, finish, received, why):
    """A stream that ends without a finish reason, or whose model is stopped after some text, is not a complete
    answer: the text is kept (StreamCut) and the reason is given."""
    fake_vertex.mode = mode
    fake_vertex.reply = REPLY
    if finish:
        fake_vertex.finish_after_text = finish
    chunks, stats, error = collect(gemini(), ask("x"))
    assert "".join(chunks) == received
    assert isinstance(error, StreamCut) and why in str(error)
    assert stats.finish_reason == (finish.lower() if finish else None)


def test_max_tokens_after_text_is_a_complete_reply(fake_vertex):
    fake_vertex.mode, fake_vertex.finish_after_text = "safety_after_text", "MAX_TOKENS"
    fake_vertex.reply = REPLY
    chunks, stats, error = collect(gemini(), ask("x"))
    assert error is None and "".join(chunks) == "one two three four five six" and stats.finish_reason == "length"


def test_never_answering_times_out(fake_vertex, caplog):
    caplog.set_level(logging.INFO, GEMINI_LOGGER)
    fake_vertex.mode = "hang"
    started = time.monotonic()
    _, _, error = collect(gemini(timeout_s=1), ask("x"))
    assert type(error) is ModelError and "did not answer within 1 s" in str(error)
    assert len(fake_vertex.generate_requests()) == 1 and waits_logged(caplog, GEMINI_LOGGER) == []  # not retried
    assert time.monotonic() - started < 30  # a guard against hanging on the silence, not a measure of speed


def test_stop_closes_the_sdk_stream_explicitly_and_with_it_the_connection(fake_vertex, monkeypatch):
    fake_vertex.reply = " ".join(f"w{i}" for i in range(300))
    fake_vertex.tokens_per_s = 30
    model = gemini()
    client = model._get_client()
    # Hold every SDK stream the model opens: garbage collection can then never close one for us, so only the
    # model's own explicit close() can end it.
    held = []
    open_stream = client.models.generate_content_stream

    def holding(**kwargs):
        held.append(open_stream(**kwargs))
        return held[-1]

    monkeypatch.setattr(client.models, "generate_content_stream", holding)
    stream = model.stream(ask("x"), PARAMS, ReplyStats())
    assert next(stream) == "w0 w1 w2"

    stream.close()  # what the chat does when the user presses stop

    assert len(held) == 1 and held[0].gi_frame is None, "the SDK stream was left open after stop"
    assert fake_vertex.wait_for_disconnect(3.0), "the server kept streaming after stop"


def test_client_is_created_once_and_kept(fake_vertex):
    model = gemini()
    collect(model, ask("a"))
    client = model._client
    collect(model, ask("b"))
    assert client is not None and model._client is client
