"""What a person sees of a self-hosted (OpenAI-compatible) reply, each promise pinned by the observable result (the
reply text, the usage recorded, the sentence shown), against the fault-injecting vLLM-shaped server."""

from __future__ import annotations

import base64
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from requests import Response
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from chatapp.conversation import ImageRef, Message
from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, StreamCut
from chatapp.models.context_window import WHAT_TO_DO, ContextTooLong
from chatapp.models.openai_compat import OpenAICompatModel
from chatapp.models.openai_compat_errors import (
    describe,
    error_message,
    http_error,
    is_read_timeout,
    response_reason,
    retry_after,
)
from harness.fakes.openai_server import FakeOpenAIServer
from harness.support import free_port
from tests.media.images import PNG
from tests.models.helpers import ask, collect, within

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


# -- the reply's stream (openai_compat_stream) -----------------------------------------------------------------
def test_without_a_usage_chunk_each_delta_counts_as_one_token(fake_openai):
    """llama-cpp-python ignores include_usage: no prompt count, and the reply's is its deltas, thinking included."""
    fake_openai.sends_usage = False
    fake_openai.reasoning = "weigh it"
    fake_openai.reply = "one two three"
    chunks, stats, error = collect(model_for(fake_openai), ask("count"))
    assert error is None and "".join(chunks) == "one two three"
    assert (stats.tokens_in, stats.tokens_out) == (None, 5)


def test_usage_and_finish_come_from_the_server(fake_openai):
    fake_openai.reply = "one two"
    _, stats, _ = collect(model_for(fake_openai), ask("a b c"))
    # The fake counts words: 3 in the prompt + 4 for the template.
    assert (stats.tokens_in, stats.tokens_out, stats.finish_reason) == (7, 2, "stop")


@pytest.mark.parametrize(
    ("reason", "because"),
    [
        ("abort", "the server aborted the request (restarting or scaling down?); try again"),
        ("content_filter", "its content filter stopped the reply"),
        ("tool_budget", "of finish reason 'tool_budget'"),
    ],
)
def test_a_reply_that_ended_for_another_reason_keeps_its_text_and_says_why(fake_openai, reason, because):
    fake_openai.mode, fake_openai.abort_reason = "abort", reason
    fake_openai.reply = "alpha beta gamma delta"
    chunks, stats, error = collect(model_for(fake_openai), ask("x"))
    assert "".join(chunks) == "alpha beta"
    assert isinstance(error, StreamCut) and str(error) == f"{LABEL} stopped mid-reply because {because}."
    assert stats.finish_reason == reason


def test_an_error_event_mid_reply_keeps_the_text_and_quotes_the_server(fake_openai):
    fake_openai.mode = "error_event"
    fake_openai.reply = "alpha beta gamma delta"
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert "".join(chunks) == "alpha beta"
    assert isinstance(error, StreamCut) and str(error) == f"{LABEL} failed while answering: The engine died"


def test_an_overflow_found_after_the_200_is_explained(fake_openai):
    fake_openai.mode = "too_long_in_stream"
    _, _, error = collect(model_for(fake_openai), ask("x"))
    assert isinstance(error, ContextTooLong) and str(error).startswith(f"Your message is too long for {LABEL}: ")


def test_a_stream_that_ends_without_finishing_keeps_its_text(fake_openai):
    fake_openai.mode = "end_early"
    fake_openai.reply = "alpha beta gamma delta"
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert "".join(chunks) == "alpha beta" and type(error) is StreamCut
    assert str(error) == f"{LABEL} stopped before finishing the reply (the stream ended early)."


def test_a_cut_connection_says_so_in_words(fake_openai):
    fake_openai.mode = "cut"
    fake_openai.reply = "alpha beta gamma delta"
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert "".join(chunks) == "alpha beta" and isinstance(error, StreamCut)
    assert str(error) == f"The connection to {LABEL} broke mid-reply (connection closed mid-response)."


def test_silence_mid_reply_is_a_cut_that_says_how_long(fake_openai):
    fake_openai.mode, fake_openai.first_token_delay_s = "slow_start", 5.0
    _, _, error = collect(model_for(fake_openai, timeout_s=0.5), ask("x"))
    assert isinstance(error, StreamCut) and str(error) == f"{LABEL} went silent for 0.5 s; the reply was cut off."


def test_a_malformed_line_is_logged_and_skipped(fake_openai, caplog):
    fake_openai.mode = "malformed"
    fake_openai.reply = "alpha beta gamma delta"
    with caplog.at_level(logging.WARNING, logger="chatapp.models.openai_compat_stream"):
        chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert error is None and "".join(chunks) == "alpha beta gamma delta"
    [record] = [r for r in caplog.records if r.name == "chatapp.models.openai_compat_stream"]
    assert record.getMessage() == (
        f"{LABEL} sent a malformed stream line; skipped: " + repr('{"id": "broken", "choices": [{"delta": {"content": ')
    )


# -- the request (openai_compat_request) -----------------------------------------------------------------------
def test_unset_sampling_sends_the_models_own_defaults_and_a_set_one_as_set(fake_openai):
    model = model_for(fake_openai)
    collect(model, ask("a"), GenerationParams(max_tokens=32))
    collect(model, ask("b"), GenerationParams(temperature=0.2, top_p=0.5, max_tokens=32))
    defaults, chosen = fake_openai.chat_requests()
    options = model.options
    assert (defaults["temperature"], defaults["top_p"]) == (options.temperature, options.top_p)
    assert (chosen["temperature"], chosen["top_p"], chosen["max_tokens"]) == (0.2, 0.5, 32)


def test_gemma_4_is_recognised_whatever_the_case(fake_openai):
    model = OpenAICompatModel(LABEL, fake_openai.base_url, "Google/GEMMA-4-12B-IT")
    assert model.options.thinking_levels == ("off", "on") and model.options.thinking == "off"


def test_images_go_as_data_url_parts_after_the_text_and_alone_without_text(fake_openai):
    image = ImageRef("a" * 32, "image/png", len(PNG), PNG)
    url = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    messages = [Message("user", "What is this?", images=(image,)), Message("user", "", images=(image,))]
    collect(model_for(fake_openai), messages)
    [body] = fake_openai.chat_requests()
    part = {"type": "image_url", "image_url": {"url": url}}
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]},
        {"role": "user", "content": [part]},
    ]


def test_an_image_that_could_not_be_read_is_said_before_anything_is_sent(fake_openai):
    unread = ImageRef("a" * 32, "image/png", 10)
    _, _, error = collect(model_for(fake_openai), [Message("user", "x", images=(unread,))])
    assert type(error) is ModelError
    assert str(error) == "An image of this conversation could not be read; attach it again."
    assert fake_openai.requests == []


# -- the server's words, however it puts them (openai_compat_errors) -------------------------------------------
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"error": {"message": "OpenAI's words", "type": "invalid_request_error"}}, "OpenAI's words"),
        ({"error": "a bare string"}, "a bare string"),
        ({"object": "error", "message": "vLLM's words", "code": 400}, "vLLM's words"),
        ({"detail": [{"loc": ["body", "top_p"], "msg": "too big"}, "other"]}, "too big; other"),  # FastAPI
        ({"detail": "Not Found"}, "Not Found"),
        ({"error": {"message": ""}, "detail": ""}, None),
        (["not", "an", "object"], None),
    ],
)
def test_the_reason_is_read_from_each_servers_error_body(body, reason):
    assert error_message(body) == reason


def response(status: int, content: bytes, reason: str = "", headers: dict[str, str] | None = None) -> Response:
    """A requests Response as a server's answer arrives (body, status line, headers)."""
    answer = Response()
    answer.status_code, answer._content, answer.reason = status, content, reason
    answer.headers.update(headers or {})
    return answer


def test_a_body_that_is_no_error_object_is_quoted_and_an_empty_one_gives_the_status_line():
    assert response_reason(response(502, b"  upstream connect error  ", "Bad Gateway")) == "upstream connect error"
    assert response_reason(response(502, b"", "Bad Gateway")) == "Bad Gateway"
    assert response_reason(response(502, b"")) == "no reason given"
    assert response_reason(response(500, b"x" * 600)) == "x" * 500


def test_retry_after_is_read_as_seconds_or_as_a_date():
    assert retry_after(response(429, b"", headers={"Retry-After": "2.5"})) == 2.5
    assert retry_after(response(429, b"", headers={"Retry-After": "-3"})) == 0.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 20 < (retry_after(response(429, b"", headers={"Retry-After": soon})) or 0) <= 30
    assert retry_after(response(429, b"", headers={"Retry-After": "soon"})) is None
    assert retry_after(response(429, b"")) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "Gemma Test refused the request (HTTP 401: no key); check its credentials."),
        (403, "Gemma Test refused the request (HTTP 403: no key); check its credentials."),
        (404, "Gemma Test: retired or unknown model id m: set SELF_HOSTED_MODEL (gemmaModel) (HTTP 404: no key)."),
        (422, "Gemma Test rejected the request (HTTP 422): no key"),
        (499, "Gemma Test rejected the request (HTTP 499): no key"),
        (500, "Gemma Test failed with a server error (HTTP 500): no key"),
        (
            504,
            "Gemma Test is still starting (HTTP 504: no key); switch to another model or try again in a few minutes.",
        ),
    ],
)
def test_each_refusal_is_said_as_what_it_means(status, expected):
    error = http_error(LABEL, "m", status, "no key")
    assert str(error) == expected
    assert isinstance(error, ModelUnavailable) == (status == 504)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[Errno 111] Connection refused", "connection refused"),
        ("[Errno -2] Name or service not known", "host name not found"),
        ("nodename nor servname provided, or not known", "host name not found"),
        ("[Errno -3] Temporary failure in name resolution", "host name not found"),
        ("Read timed out. (read timeout=5)", "timed out"),
        ("[Errno 104] Connection reset by peer", "connection reset"),
        ("Response ended prematurely", "connection closed mid-response"),
        ("IncompleteRead(12 bytes read)", "connection closed mid-response"),
        ("RemoteDisconnected('Remote end closed connection without response')", "server closed the connection"),
        ("y" * 300, "y" * 200),
    ],
)
def test_requests_nested_exceptions_are_said_in_a_few_words(text, reason):
    assert describe(requests.ConnectionError(text)) == reason


def test_a_read_timeout_is_known_however_requests_wraps_it():
    assert is_read_timeout(requests.exceptions.ReadTimeout("slow"))
    assert is_read_timeout(requests.ConnectionError(ReadTimeoutError(None, "/v1", "Read timed out.")))
    assert not is_read_timeout(requests.ConnectionError("Connection reset by peer"))


# -- the connection (openai_compat) ----------------------------------------------------------------------------
@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: the kernel drops further SYNs, so a connection attempt only times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(8):  # fill the queue (never accepted); the attempts that do not fit are given up at once
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        queued.append(client)
    yield port
    for sock in (*queued, listener):
        sock.close()


def test_a_server_that_does_not_accept_the_connection_is_unavailable_in_its_own_words(full_backlog):
    model = OpenAICompatModel(LABEL, f"http://127.0.0.1:{full_backlog}/v1", "m", connect_timeout_s=0.5)
    chunks, _, error = within(10, lambda: collect(model, ask("x")))
    assert chunks == [] and isinstance(error, ModelUnavailable)
    assert str(error) == (
        f"{LABEL} did not accept a connection within 0.5 s; it may be down or still starting. Switch to another "
        "model or try again in a few minutes."
    )


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_the_status_check_gives_a_silent_server_two_seconds(silent_port):
    model = OpenAICompatModel(LABEL, f"http://127.0.0.1:{silent_port}/v1", "m")
    assert within(15, model.check) == "not reachable (timed out)"


def test_a_request_that_cannot_be_sent_says_why():
    model = OpenAICompatModel(LABEL, "ftp://127.0.0.1/v1", "m")
    _, _, error = collect(model, ask("x"))
    assert type(error) is ModelError
    assert str(error) == (
        f"Could not send the request to {LABEL}: No connection adapters were found for "
        "'ftp://127.0.0.1/v1/chat/completions'"
    )


def test_the_request_is_json_as_the_openai_api_asks(fake_openai):
    collect(model_for(fake_openai), ask("x"))
    [request] = [r for r in fake_openai.requests if r["path"] == "/v1/chat/completions"]
    assert request["headers"]["Content-Type"] == "application/json"


def test_a_server_that_serves_no_model_yet_says_so(fake_openai):
    fake_openai.served = []
    assert model_for(fake_openai).check() == (
        "retired or unknown model id fake-model: set SELF_HOSTED_MODEL (gemmaModel) (the server serves nothing)"
    )


def test_a_failure_after_text_with_images_is_the_cut_not_an_images_refusal(fake_openai):
    """Only a failure before the first token may be the model refusing images; once text came it was not."""
    fake_openai.mode = "cut"
    fake_openai.reply = "alpha beta gamma delta"
    image = ImageRef("a" * 32, "image/png", len(PNG), PNG)
    chunks, _, error = collect(model_for(fake_openai), [Message("user", "what is it?", images=(image,))])
    assert "".join(chunks) == "alpha beta" and isinstance(error, StreamCut)
    assert str(error) == f"The connection to {LABEL} broke mid-reply (connection closed mid-response)."


def test_each_concurrent_stream_keeps_its_pooled_connection(fake_openai, caplog):
    """One pooled connection per concurrent stream (max_connections), more than requests' default pool of 10:
    urllib3 would otherwise discard the extra connections after each turn and open new ones the next."""
    fake_openai.reply, fake_openai.tokens_per_s = 5, 10  # half a second each: the streams overlap
    model = model_for(fake_openai, max_connections=16)
    results: list[tuple] = []
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        workers = [threading.Thread(target=lambda: results.append(collect(model, ask("x")))) for _ in range(14)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert [error for _, _, error in results] == [None] * 14
    assert "Connection pool is full" not in caplog.text


def test_done_ends_a_reply_whose_server_sent_no_finish_reason(fake_openai):
    fake_openai.sends_finish = False
    fake_openai.reply = "alpha beta"
    chunks, stats, error = collect(model_for(fake_openai), ask("x"))
    assert error is None and "".join(chunks) == "alpha beta" and stats.finish_reason is None


def test_an_error_event_without_a_message_still_says_it_failed(fake_openai):
    fake_openai.mode, fake_openai.error_event_message = "error_event", None
    fake_openai.reply = "alpha beta gamma delta"
    _, _, error = collect(model_for(fake_openai), ask("x"))
    assert isinstance(error, StreamCut) and str(error) == f"{LABEL} failed while answering: unknown error"


class BrokenBody:
    """A response body whose connection breaks while it is read (urllib3's raw stream)."""

    def stream(self, *args: object, **kwargs: object) -> Iterator[bytes]:
        raise ProtocolError("Connection broken: IncompleteRead(0 bytes read)")
        yield b""


@pytest.mark.parametrize(("status_line", "reason"), [("Bad Gateway", "Bad Gateway"), ("", "no reason given")])
def test_an_error_body_that_cannot_be_read_gives_the_status_line(status_line, reason):
    answer = Response()
    answer.status_code, answer.reason, answer.raw = 502, status_line, BrokenBody()
    assert response_reason(answer) == reason
