"""Auto's own bookkeeping against scripted models, in-process: which streams it closes, when it skips the
self-hosted model, whose error a person reads, what `check` says. (tests/models/test_auto.py drives the same
over the real wire formats.)"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chatapp.conversation import Message
from chatapp.models.auto import AutoModel, build_auto, short_reason
from chatapp.models.base import GenerationParams, ModelError, ModelUnavailable, ReplyStats, StreamCut
from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import OpenAICompatModel
from chatapp.settings import load_settings
from tests.models.helpers import ask, collect


class Stream:
    """A reply the test keeps hold of, so only Auto's explicit close() marks it closed (not garbage collection)."""

    def __init__(self, chunks: Sequence[str], error: ModelError | None, stats: ReplyStats) -> None:
        self.chunks, self.error, self.stats = list(chunks), error, stats
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        if self.sent == len(self.chunks):
            if self.error is not None:
                self.stats.tokens_in, self.stats.finish_reason = 5, "partial"  # what a failed attempt left behind
                raise self.error
            self.stats.tokens_out, self.stats.finish_reason = self.sent, "stop"
            raise StopIteration
        self.sent += 1
        return self.chunks[self.sent - 1]

    def close(self) -> None:
        self.closed = True


class Scripted:
    def __init__(self, label: str, chunks: Sequence[str] = (), error: ModelError | None = None) -> None:
        self.label, self.chunks, self.error = label, chunks, error
        self.reason: str | None = None  # what check() says
        self.streams: list[Stream] = []

    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Stream:
        self.streams.append(Stream(self.chunks, self.error, stats))
        return self.streams[-1]

    def check(self) -> str | None:
        return self.reason


DOWN = ModelUnavailable("P is not reachable (connection refused); switch to another model.")


def test_the_failed_attempt_and_the_answer_are_both_closed():
    primary, fallback = Scripted("P", error=DOWN), Scripted("F", ["Hel", "lo"])
    chunks, stats, error = collect(AutoModel("Auto", primary, fallback), ask("hi"))
    assert (chunks, error) == (["Hel", "lo"], None)
    assert (stats.answered_by, stats.because) == ("F", "P is not reachable (connection refused)")
    assert primary.streams[0].closed and fallback.streams[0].closed


def test_an_empty_reply_is_closed_and_named():
    primary, fallback = Scripted("P", ["", ""]), Scripted("F", ["ok"])
    chunks, stats, _ = collect(AutoModel("Auto", primary, fallback), ask("hi"))
    assert chunks == ["ok"] and (stats.answered_by, stats.because) == ("F", "P returned an empty reply")
    assert primary.streams[0].closed


@pytest.mark.parametrize("failing", ["primary", "fallback"])
def test_stopping_mid_reply_closes_the_answering_stream(failing):
    primary = Scripted("P", error=DOWN) if failing == "primary" else Scripted("P", ["a", "b", "c"])
    fallback = Scripted("F", ["x", "y", "z"])
    reply = AutoModel("Auto", primary, fallback).stream(ask("hi"), GenerationParams(), ReplyStats())
    next(reply)
    reply.close()  # the person pressed stop
    answering = fallback if failing == "primary" else primary
    assert answering.streams[0].closed and answering.streams[0].sent == 1


def test_a_fallback_cut_mid_reply_reports_its_own_error():
    fallback = Scripted("F", ["", "Hel"], StreamCut("F was cut off."))
    chunks, _, error = collect(AutoModel("Auto", Scripted("P", error=DOWN), fallback), ask("hi"))
    assert chunks == ["", "Hel"] and isinstance(error, StreamCut) and str(error) == "F was cut off."


def test_when_both_fail_before_any_text_the_error_names_both_and_no_stats_are_mixed():
    fallback = Scripted("F", [""], ModelUnavailable("F is down."))
    chunks, stats, error = collect(AutoModel("Auto", Scripted("P", error=DOWN), fallback), ask("hi"))
    assert chunks == [""] and isinstance(error, ModelUnavailable)
    assert str(error) == "F is down. (P is not reachable (connection refused), so Auto tried F.)"
    assert (stats.tokens_in, stats.tokens_out) == (5, None)  # the fallback's own partial count, not P's


def test_the_primarys_partial_stats_are_dropped_before_the_fallback_answers():
    primary, fallback = Scripted("P", error=DOWN), Scripted("F", error=ModelError("F refused."))
    _, stats, _ = collect(AutoModel("Auto", primary, Scripted("F", [], None)), ask("hi"))
    assert (stats.tokens_in, stats.tokens_out, stats.finish_reason) == (None, 0, "stop")
    _, stats, _ = collect(AutoModel("Auto", primary, fallback), ask("hi"))
    assert (stats.tokens_in, stats.tokens_out) == (5, None)


def test_the_skip_window_starts_at_an_unavailable_failure_and_ends_on_time():
    now = [0.0]  # a clock that starts at zero: nothing is skipped before a failure
    primary, fallback = Scripted("P", ["p"]), Scripted("F", ["f"])
    auto = AutoModel("Auto", primary, fallback, skip_s=0.5, clock=lambda: now[0])
    assert collect(auto, ask("1"))[0] == ["p"]
    primary.error, primary.chunks = DOWN, []
    assert collect(auto, ask("2"))[0] == ["f"]
    primary.error, primary.chunks = None, ["p"]
    now[0] = 0.25
    assert collect(auto, ask("3"))[1].because == "P is not reachable (connection refused)"
    assert len(primary.streams) == 2  # not asked
    now[0] = 0.5  # the window is over exactly at its end
    assert collect(auto, ask("4"))[0] == ["p"]


def test_a_zero_skip_window_never_skips():
    now = [10.0]
    primary = Scripted("P", error=DOWN)
    auto = AutoModel("Auto", primary, Scripted("F", ["f"]), skip_s=0.0, clock=lambda: now[0])
    collect(auto, ask("1"))
    collect(auto, ask("2"))
    assert len(primary.streams) == 2


def test_check_is_fine_when_either_model_is_and_names_both_reasons_otherwise():
    primary, fallback = Scripted("P"), Scripted("F")
    auto = AutoModel("Auto", primary, fallback)
    assert auto.check() is None
    primary.reason = "not reachable"
    assert auto.check() is None
    fallback.reason = "no credentials"
    assert auto.check() == "P: not reachable; F: no credentials"
    primary.reason = None
    assert auto.check() is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "P is still starting (HTTP 503: Loading model); switch to another model or try again.",
            "P is still starting (HTTP 503: Loading model)",
        ),
        ("  P failed.  ", "P failed"),
        (".P said X..", ".P said X"),
    ],
)
def test_short_reason_is_the_first_clause_without_its_full_stop(message, reason):
    assert short_reason(ModelError(message)) == reason


def test_build_auto_clones_the_self_hosted_client_and_needs_both_kinds(fake_vertex):
    settings = load_settings({"SELF_HOSTED_LABEL": "P", "GEMINI_LABEL": "G", "CHAT_CONCURRENCY": "7"})
    primary = OpenAICompatModel("P", "http://127.0.0.1:9/v1", "m-1", timeout_s=11.0, connect_timeout_s=3.0)
    gemini = GeminiModel("G", "gemini-2.5-flash")
    auto = build_auto(settings, {"P": primary, "G": gemini})
    assert auto is not None and auto.label == settings.auto_label and auto.fallback is gemini
    clone = auto.primary
    assert isinstance(clone, OpenAICompatModel) and clone is not primary
    assert (clone.label, clone.base_url, clone.model_id) == ("P", primary.base_url, "m-1")
    assert (clone.timeout_s, clone.connect_timeout_s, clone.retry_budget_s) == (11.0, 3.0, 0.0)
    assert clone._session.get_adapter(clone.base_url)._pool_maxsize == 7
    assert build_auto(settings, {"P": Scripted("P"), "G": gemini}) is None
    assert build_auto(settings, {"P": primary, "G": Scripted("G")}) is None


def test_a_stream_without_close_is_fine():
    # The protocol asks for an Iterator: a model may hand back a plain one, which has nothing to close.
    class Plain(Scripted):
        def stream(self, messages, params, stats):
            return iter(self.chunks)

    chunks, stats, error = collect(AutoModel("Auto", Plain("P", ["", ""]), Plain("F", ["ok"])), ask("hi"))
    assert (chunks, error, stats.answered_by) == (["ok"], None, "F")
    chunks, stats, error = collect(AutoModel("Auto", Plain("P", ["a", "b"]), Plain("F", ["ok"])), ask("hi"))
    assert (chunks, error, stats.answered_by) == (["a", "b"], None, "P")
