"""Auto: the self-hosted model when it can answer, Gemini when it cannot, never a switch once text streamed.

The self-hosted slot is the vLLM-shaped fake and Gemini is the real google-genai SDK on the Vertex-shaped
fake, so every failure here travels the real wire format and the real client code.
"""

from __future__ import annotations

import pytest

from chatapp.models import AutoModel, build_models
from chatapp.models.base import ReplyStats, StreamCut
from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import OpenAICompatModel
from chatapp.settings import load_settings
from harness.support import free_port
from tests.models.helpers import PARAMS, ask, collect

SELF_HOSTED = "Gemma (fake vLLM)"
GEMINI = "Gemini (fake Vertex)"


def auto_over(base_url: str, model_id: str = "fake-model", **kwargs: float) -> AutoModel:
    primary = OpenAICompatModel(SELF_HOSTED, base_url, model_id, connect_timeout_s=2.0, retry_budget_s=0.0)
    return AutoModel("Auto", primary, GeminiModel(GEMINI, "gemini-3.8-flash"), **kwargs)


@pytest.fixture
def auto(fake_openai, fake_vertex) -> AutoModel:
    return auto_over(fake_openai.base_url)


def test_the_self_hosted_model_answers_when_it_is_ready(auto, fake_openai, fake_vertex):
    chunks, stats, error = collect(auto, ask("hello"))
    assert error is None and "".join(chunks) == "You said: hello"
    assert (stats.answered_by, stats.because) == (SELF_HOSTED, None)
    assert stats.tokens_out == len(chunks)  # the self-hosted model's own usage chunk
    assert fake_vertex.generate_requests() == []


def test_self_hosted_server_down_falls_back_to_gemini(fake_vertex):
    auto = auto_over(f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    chunks, stats, error = collect(auto, ask("hello"))
    assert error is None and "".join(chunks).startswith("You said: hello")
    assert stats.answered_by == GEMINI
    assert stats.because == f"{SELF_HOSTED} is not reachable (connection refused)"
    assert stats.finish_reason == "stop" and stats.tokens_in and stats.tokens_out  # Gemini's usage, not a mix
    assert len(fake_vertex.generate_requests()) == 1


@pytest.mark.parametrize(
    ("mode", "because"),
    [
        ("loading", f"{SELF_HOSTED} is still starting (HTTP 503: Loading model)"),
        ("rate_limit", f"{SELF_HOSTED} is busy (HTTP 429: Too many requests, slow down) and asked to wait longer"),
        ("error_500", f"{SELF_HOSTED} failed with a server error (HTTP 500): CUDA error"),
    ],
)
def test_a_failure_before_the_first_token_falls_back_at_once(auto, fake_openai, fake_vertex, mode, because):
    fake_openai.mode = mode
    chunks, stats, error = collect(auto, ask("hello"))
    assert error is None and "".join(chunks).startswith("You said: hello")
    assert stats.answered_by == GEMINI and stats.because.startswith(because)
    # Asked once, not retried: a saturated self-hosted model is not waited out (its own entry retries 429s for up
    # to 12 s).
    assert len(fake_openai.chat_requests()) == 1 and len(fake_vertex.generate_requests()) == 1


@pytest.mark.parametrize("mode", ["cut", "error_event", "abort"])
def test_no_fallback_once_text_has_streamed(auto, fake_openai, fake_vertex, mode):
    fake_openai.reply = "one two three four five six"
    fake_openai.mode = mode
    chunks, stats, error = collect(auto, ask("hello"))
    assert isinstance(error, StreamCut), error
    assert "".join(chunks) == "one two three"  # the half that streamed, from the self-hosted model alone
    assert stats.answered_by == SELF_HOSTED
    assert fake_vertex.generate_requests() == []


def test_after_an_unavailable_self_hosted_model_it_is_skipped_for_a_while(fake_openai, fake_vertex):
    now = [1000.0]
    auto = auto_over(fake_openai.base_url, skip_s=15.0, clock=lambda: now[0])
    fake_openai.mode = "loading"
    assert collect(auto, ask("one"))[1].answered_by == GEMINI
    fake_openai.mode = "normal"  # ready again, but within the skip window Auto does not ask it yet
    now[0] += 10
    _, stats, _ = collect(auto, ask("two"))
    assert stats.answered_by == GEMINI and "still starting" in stats.because
    assert len(fake_openai.chat_requests()) == 1
    now[0] += 6
    assert collect(auto, ask("three"))[1].answered_by == SELF_HOSTED
    assert len(fake_openai.chat_requests()) == 2


def test_a_rejected_request_falls_back_but_does_not_make_auto_skip_the_self_hosted_model(fake_openai, fake_vertex):
    now = [1000.0]
    auto = auto_over(fake_openai.base_url, skip_s=15.0, clock=lambda: now[0])
    fake_openai.queue("bad_request")  # a 400 for this prompt says nothing about the server's health
    _, stats, error = collect(auto, ask("one"))
    assert error is None and stats.answered_by == GEMINI
    assert stats.because.startswith(f"{SELF_HOSTED} rejected the request (HTTP 400)")
    now[0] += 1  # well inside the skip window an "unavailable" failure would open
    chunks, stats, error = collect(auto, ask("two"))
    assert error is None and "".join(chunks) == "You said: two"
    assert (stats.answered_by, stats.because) == (SELF_HOSTED, None)
    assert len(fake_openai.chat_requests()) == 2 and len(fake_vertex.generate_requests()) == 1


def test_when_both_fail_the_message_names_both(auto, fake_openai, fake_vertex):
    fake_openai.mode, fake_vertex.mode = "loading", "error_500"
    chunks, _, error = collect(auto, ask("hello"))
    assert chunks == [] and error is not None
    assert GEMINI in str(error) and f"{SELF_HOSTED} is still starting" in str(error)


def test_stop_closes_the_self_hosted_request(auto, fake_openai):
    fake_openai.tokens_per_s, fake_openai.reply = 20, 200
    stream = auto.stream(ask("long story"), PARAMS, ReplyStats())
    next(stream)
    stream.close()
    assert fake_openai.wait_for_disconnect(5.0)


def test_registry_puts_auto_first_only_when_gemini_is_configured(monkeypatch, fake_vertex):
    settings = load_settings({"AUTO_LABEL": "Auto", "SELF_HOSTED_LABEL": SELF_HOSTED, "GEMINI_LABEL": GEMINI})
    models = build_models(settings)
    assert list(models) == ["Auto", SELF_HOSTED, GEMINI]
    auto = models["Auto"]
    assert isinstance(auto, AutoModel) and auto.fallback is models[GEMINI]
    first, entry = auto.primary.inner, models[SELF_HOSTED].inner  # both track one wake state (chatapp.models.waking)
    assert first.retry_budget_s == 0 and first.base_url == entry.base_url
    assert auto.primary.waking is models[SELF_HOSTED].waking
    for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert list(build_models(settings)) == [SELF_HOSTED, GEMINI]
