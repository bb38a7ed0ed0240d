"""OpenAICompatModel against the fault-injecting vLLM-shaped server: every failure becomes a readable error."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatapp.conversation import Message
from chatapp.models import openai_compat
from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, ReplyStats, StreamCut
from chatapp.models.context_window import ContextTooLong
from chatapp.models.openai_compat import OpenAICompatModel
from harness.fakes.openai_server import FakeOpenAIServer
from harness.support import free_port
from tests.models.helpers import PARAMS, ask, collect, waits_logged

# These tests run code in worker threads: an assert or error there must fail the test, not just warn.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def model_for(fake: FakeOpenAIServer, **kwargs) -> OpenAICompatModel:
    return OpenAICompatModel("Gemma Test", fake.base_url, fake.model, **kwargs)


def test_streams_in_chunks_and_sends_the_openai_request(fake_openai):
    fake_openai.reply = "One two three four five."
    messages = [
        Message("system", "Be terse."),
        Message("user", "Hi"),
        Message("assistant", "Hello"),
        Message("user", "Count"),
    ]
    chunks, stats, error = collect(model_for(fake_openai), messages, GenerationParams(0.3, 0.9, 100))
    assert error is None
    assert chunks == ["One", " two", " three", " four", " five."]
    assert (stats.tokens_out, stats.finish_reason) == (5, "stop")
    assert stats.tokens_in and stats.tokens_in > 0
    [body] = fake_openai.chat_requests()
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in messages]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == (fake_openai.model, 0.3, 0.9, 100)


def test_max_tokens_reached_is_reported_as_length(fake_openai):
    fake_openai.reply = 10
    chunks, stats, error = collect(model_for(fake_openai), ask("x"), GenerationParams(max_tokens=4))
    assert error is None and len(chunks) == 4 and stats.finish_reason == "length"


def test_utf8_characters_split_across_network_chunks_arrive_intact(fake_openai):
    fake_openai.split_utf8 = True
    fake_openai.reply = "Grüße aus Köln, 東京 und 🙂 — fertig."
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert error is None
    assert "".join(chunks) == "Grüße aus Köln, 東京 und 🙂 — fertig."


def test_server_down_says_so_with_the_label():
    model = OpenAICompatModel("My Gemma", f"http://127.0.0.1:{free_port()}/v1", "m")
    chunks, _, error = collect(model, ask("x"))
    assert chunks == [] and isinstance(error, ModelUnavailable)
    assert "My Gemma" in str(error) and "starting" in str(error) and "another model" in str(error)
    assert model.check() == "not reachable (connection refused)"


def test_unknown_host_is_unavailable():
    model = OpenAICompatModel("My Gemma", "http://no-such-host.invalid/v1", "m", connect_timeout_s=3)
    _, _, error = collect(model, ask("x"))
    assert isinstance(error, ModelUnavailable) and "host name not found" in str(error)


def test_503_while_loading_is_still_starting(fake_openai):
    fake_openai.mode = "loading"
    _, _, error = collect(model_for(fake_openai), ask("x"))
    assert isinstance(error, ModelUnavailable)
    assert "Gemma Test is still starting" in str(error) and "Loading model" in str(error)
    assert model_for(fake_openai).check() == "still starting (HTTP 503)"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("error_500", "server error (HTTP 500): CUDA error: an illegal memory access"),
        ("bad_request", "rejected the request (HTTP 400): top_p must be in (0, 1], got 0.0."),
    ],
)
def test_http_errors_carry_the_servers_reason(fake_openai, mode, expected):
    fake_openai.mode = mode
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert chunks == [] and type(error) is ModelError
    assert expected in str(error)


@pytest.mark.parametrize("mode", ["too_long", "too_long_in_stream"])
def test_a_prompt_over_the_window_names_the_limit_and_what_to_do(fake_openai, mode):
    """vLLM's overflow, as an HTTP 400 or as an error event after a 200: not "the stream ended early"."""
    fake_openai.mode = mode
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert chunks == [] and isinstance(error, ContextTooLong)
    text = str(error)
    assert "too long for Gemma Test" in text and "at most 4,096 tokens" in text and "has 9,000" in text
    assert "Shorten the message" in text and "start a new chat" in text
    assert "ended early" not in text and "HTTP 400" not in text


def test_a_reply_that_does_not_fit_says_to_lower_max_tokens(fake_openai):
    fake_openai.mode = "reply_too_long"
    _, _, error = collect(model_for(fake_openai), ask("x"), GenerationParams(max_tokens=1024))
    assert isinstance(error, ContextTooLong)
    assert "at most 4,096 tokens" in str(error) and "already takes 3,500" in str(error)
    assert 'Lower "Max tokens"' in str(error) and "up to 1,024 tokens" in str(error)


def test_429_is_retried_honouring_retry_after_then_succeeds(fake_openai, caplog):
    caplog.set_level(logging.INFO, openai_compat.__name__)
    fake_openai.retry_after_s = 0.3
    fake_openai.queue("rate_limit", "rate_limit")
    chunks, _, error = collect(model_for(fake_openai), ask("hello"))
    assert error is None and "".join(chunks) == "You said: hello"
    assert len(fake_openai.chat_requests()) == 3
    # What the server asked for, not the client's own backoff (1 s, then 2 s).
    assert waits_logged(caplog, openai_compat.__name__) == [0.3, 0.3]


def test_429_that_persists_is_reported_within_the_retry_budget(fake_openai, caplog):
    caplog.set_level(logging.INFO, openai_compat.__name__)
    fake_openai.mode = "rate_limit"
    fake_openai.retry_after_s = 0.4
    _, _, error = collect(model_for(fake_openai, retry_budget_s=1.0), ask("x"))
    assert type(error) is ModelError and "busy (HTTP 429: Too many requests" in str(error)
    waited = waits_logged(caplog, openai_compat.__name__)
    assert waited and set(waited) == {0.4} and sum(waited) <= 1.0  # never past the budget
    assert len(fake_openai.chat_requests()) == len(waited) + 1  # one request after each wait, then it gave up


def test_slow_first_token_is_waited_for(fake_openai):
    fake_openai.mode = "slow_start"
    fake_openai.first_token_delay_s = 1.0
    started = time.monotonic()
    chunks, _, error = collect(model_for(fake_openai, timeout_s=10), ask("slow"))
    assert error is None and "".join(chunks) == "You said: slow"
    assert time.monotonic() - started >= 1.0


def test_silence_longer_than_the_timeout_mid_stream_is_a_cut(fake_openai):
    fake_openai.mode = "slow_start"  # headers and the role chunk arrive, then silence
    fake_openai.first_token_delay_s = 5.0
    _, _, error = collect(model_for(fake_openai, timeout_s=0.5), ask("x"))
    assert isinstance(error, StreamCut) and "went silent for 0.5 s" in str(error)


def test_server_that_never_answers_times_out_clearly(fake_openai, caplog):
    caplog.set_level(logging.INFO, openai_compat.__name__)
    fake_openai.mode = "hang"
    started = time.monotonic()
    _, _, error = collect(model_for(fake_openai, timeout_s=0.5), ask("x"))
    assert type(error) is ModelError and "did not start answering within 0.5 s" in str(error)
    # Given up on, not retried.
    assert len(fake_openai.chat_requests()) == 1 and waits_logged(caplog, openai_compat.__name__) == []
    assert time.monotonic() - started < 30  # a guard against hanging on the silence, not a measure of speed


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("cut", "connection to Gemma Test broke mid-reply (connection closed mid-response)"),
        ("end_early", "stopped before finishing the reply"),
        ("error_event", "failed while answering: The engine died"),
        ("abort", "stopped mid-reply because the server aborted the request"),
    ],
)
def test_stream_broken_mid_reply_keeps_the_partial_text(fake_openai, mode, expected):
    fake_openai.mode = mode
    fake_openai.reply = "alpha beta gamma delta epsilon zeta"
    chunks, _, error = collect(model_for(fake_openai), ask("x"))
    assert isinstance(error, StreamCut) and expected in str(error)
    assert "".join(chunks) == "alpha beta gamma"


def test_malformed_line_is_skipped_and_the_stream_continues(fake_openai, caplog):
    fake_openai.mode = "malformed"
    fake_openai.reply = "alpha beta gamma delta"
    chunks, stats, error = collect(model_for(fake_openai), ask("x"))
    assert error is None and "".join(chunks) == "alpha beta gamma delta" and stats.finish_reason == "stop"
    assert "malformed stream line" in caplog.text


def hold_response_bodies(model: OpenAICompatModel) -> list:
    """Keep a reference to every response the model opens and to the body iterator it reads, so garbage
    collection can never close the connection for the model: only its explicit close() can."""
    held = []
    post = model._session.post

    def holding_post(*args, **kwargs):
        response = post(*args, **kwargs)
        iter_content = response.iter_content

        def holding_iter_content(*a, **kw):
            body = iter_content(*a, **kw)
            held.append((response, body))
            return body

        response.iter_content = holding_iter_content
        return response

    model._session.post = holding_post
    return held


def test_stop_closes_the_upstream_response_explicitly(fake_openai):
    fake_openai.reply = 200
    fake_openai.tokens_per_s = 50
    model = model_for(fake_openai)
    held = hold_response_bodies(model)
    stream = model.stream(ask("x"), PARAMS, ReplyStats())
    assert next(stream) == "tok1 "

    stream.close()  # what the chat does when the user presses stop

    [(response, _body)] = held
    assert response.raw.closed, "the response was left open after stop"
    assert fake_openai.wait_for_disconnect(2.0), "the server kept streaming to a closed generator"
    assert fake_openai.completed == 0


def test_32_concurrent_streams_are_all_in_flight_at_once(fake_openai):
    # No stream waits for another: the fake answers none of the 32 until all 32 are asking. A client that ran
    # them one at a time (a lock, a pool that blocks) leaves the barrier to break after its timeout, and every
    # stream then fails. A condition, not a stopwatch: the old version timed 32 streams against one and failed
    # a busy CI run (0.93 against 0.48 s) with nothing wrong.
    everyone = threading.Barrier(32, timeout=30)

    def reply(body: dict) -> str:
        everyone.wait()
        return " ".join(f"tok{i}" for i in range(1, 21))

    fake_openai.reply, fake_openai.tokens_per_s = reply, 40
    model = model_for(fake_openai)

    def one() -> None:
        chunks, _, error = collect(model, ask("x"))
        assert error is None and len(chunks) == 20, error

    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(one) for _ in range(32)]
    for future in futures:
        future.result()  # re-raises a worker's failed assert here, where it fails the test
    assert fake_openai.wait_for_completed(32) and fake_openai.completed == 32
