"""Usage per turn and the daily limit, through the real send path (ChatService → RetryingStore → SQLite)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from chatapp.chat import Ask, ChatService, ChatSession
from chatapp.history.base import StoreError, Usage
from chatapp.history.pending import RetryingStore
from chatapp.history.sqlite import SqliteStore
from chatapp.models.base import GenerationParams, ModelError
from chatapp.usage import DailyUsage, OverLimit, next_reset

# The clock of every turn and count here (ChatService's and DailyUsage's `now`), at a fixed hour so the reset time
# in messages is known, and on a day long past, so a service that stamped turns with the real time (a run that
# crossed midnight UTC once failed on that) counts them on another day than the limit reads.
NOW = datetime(2026, 3, 14, 21, 47, 10, tzinfo=UTC)


class CountingModel:
    """Replies "a b c" and reports usage like a provider that sends it (or not, with report=False)."""

    label = "counting"

    def __init__(self, report: bool = True) -> None:
        self.report = report
        self.calls = 0

    def stream(self, messages, params, stats) -> Iterator[str]:
        self.calls += 1
        if self.report:
            stats.tokens_in, stats.tokens_out = 40, 3
        yield from ("a", " b", " c")

    def check(self) -> None:
        return None


@pytest.fixture
def history(tmp_path) -> Iterator[RetryingStore]:
    store = RetryingStore(SqliteStore(tmp_path / "history.sqlite3"))
    yield store
    store.close()


def service_with(history: RetryingStore, model: CountingModel, limit: int | None) -> ChatService:
    usage = DailyUsage(history.tokens_used, limit, now=lambda: NOW)
    return ChatService({model.label: model}, history, context_chars=24_000, usage=usage, now=lambda: NOW)


def turn(service: ChatService, session: ChatSession, text: str = "hello") -> list:
    return list(service.reply(session, Ask(text, "counting")))


def test_each_reply_stores_its_usage_and_the_turn_log_line_says_it(history, caplog):
    service = service_with(history, CountingModel(), limit=None)
    session = ChatSession(owner="alice")
    with caplog.at_level(logging.INFO, logger="chatapp.turns"):
        turn(service, session)
    stored = history.load_messages(session.session_id, "alice")
    assert stored[1].usage == Usage(40, 3, estimated=False)
    record = json.loads(caplog.records[-1].getMessage())
    assert (record["tokens_in"], record["tokens_out"], record["tokens_estimated"]) == (40, 3, False)
    assert service.usage.used("alice") == 43


def test_a_provider_without_usage_is_estimated_and_marked_so(history):
    service = service_with(history, CountingModel(report=False), limit=None)
    session = ChatSession(owner="alice")
    turn(service, session, "x" * 40)  # 40 characters of prompt ≈ 10 tokens; "a b c" (5 chars) ≈ 2
    assert history.load_messages(session.session_id, "alice")[1].usage == Usage(10, 2, estimated=True)


def test_over_the_limit_is_refused_before_any_request_with_the_reset_time(history):
    model = CountingModel()
    service = service_with(history, model, limit=100)
    session = ChatSession(owner="alice")
    for _ in range(3):  # 43 tokens each: 43, 86, then 129 ≥ 100
        assert turn(service, session)[-1].notice is None
    assert model.calls == 3

    (refused,) = turn(service, session, "one more")
    assert model.calls == 3, "the model was called despite the limit"
    assert refused.done and refused.text == "" and refused.saved is None
    assert refused.notice == (
        "You have used your 100 tokens for today (129 used). The limit resets at 00:00 UTC (in 2 h 13 min); "
        "nothing was sent to the model."
    )
    assert session.turns == 3 and len(history.load_messages(session.session_id, "alice")) == 6
    # Someone else is not affected.
    assert turn(service, ChatSession(owner="bob"))[-1].notice is None


def test_the_count_survives_a_restart(history, tmp_path):
    service = service_with(history, CountingModel(), limit=80)
    session = ChatSession(owner="alice")
    turn(service, session)
    turn(service, session)
    # A new process: nothing cached, the stored counter is read once.
    reads: list[str] = []

    def read(owner, day):
        reads.append(owner)
        return history.tokens_used(owner, day)

    usage = DailyUsage(read, 80, now=lambda: NOW)
    fresh = ChatService({"counting": CountingModel()}, history, 24_000, usage=usage, now=lambda: NOW)
    assert "86 used" in turn(fresh, ChatSession(owner="alice"))[-1].notice
    assert fresh.usage.summary("alice") == "Tokens today: 86 of 80 (resets 00:00 UTC)"
    assert reads == ["alice"]  # read once, then cached


def admitted(usage: DailyUsage, owner: str = "alice", tokens: int = 1) -> bool:
    """Whether a request of `tokens` is let through now (its reservation is released at once)."""
    try:
        usage.reserve(owner, tokens).release()
    except OverLimit:
        return False
    return True


def test_the_cache_is_read_again_after_refresh_s_to_see_other_replicas():
    stored = {"alice": 10}
    clock = [0.0]
    usage = DailyUsage(lambda owner, day: stored[owner], 100, refresh_s=300, now=lambda: NOW, clock=lambda: clock[0])
    assert usage.used("alice") == 10
    stored["alice"] = 150  # another replica served a long conversation
    clock[0] = 299
    assert admitted(usage)
    clock[0] = 301
    assert not admitted(usage)


def test_at_the_limit_exactly_is_refused_and_one_below_is_not():
    stored = {"alice": 100}
    usage = DailyUsage(lambda owner, day: stored[owner], 100, now=lambda: NOW)
    with pytest.raises(OverLimit, match=r"You have used your 100 tokens for today \(100 used\)"):
        usage.reserve("alice", 1)
    stored["alice"] = 99
    assert admitted(DailyUsage(lambda owner, day: stored[owner], 100, now=lambda: NOW))


def test_yesterdays_cached_count_is_not_used_after_utc_midnight():
    before = datetime(2026, 12, 6, 23, 59, 30, tzinfo=UTC)
    stored = {before.date(): 500}  # the person used it all up yesterday; today starts at 0
    now = [before]
    usage = DailyUsage(lambda owner, day: stored.get(day, 0), 100, now=lambda: now[0], clock=lambda: 0.0)
    assert not admitted(usage) and usage.used("alice") == 500
    now[0] = datetime(2026, 12, 7, 0, 0, 30, tzinfo=UTC)  # one minute later, well within refresh_s
    assert usage.used("alice") == 0
    assert admitted(usage)
    usage.add("alice", 40, before.date())  # a reply of yesterday settled late adds nothing to today
    assert usage.used("alice") == 0


class _WatchedCount:
    """A cached count that records each time something reads its day (the sweep of old days does)."""

    def __init__(self, day, reads: list[int]) -> None:
        self._day, self._reads = day, reads

    @property
    def day(self):
        self._reads.append(1)
        return self._day


def test_old_days_are_dropped_once_a_day_not_on_every_read():
    day1 = datetime(2026, 12, 6, 12, tzinfo=UTC)
    now = [day1]
    usage = DailyUsage(lambda owner, day: 7, 100, now=lambda: now[0], clock=lambda: 0.0)
    for i in range(3):
        usage.used(f"person-{i}")
    now[0] = day1 + timedelta(days=1)
    usage.used("someone-today")  # the first read of the new day drops yesterday's three
    assert sorted(usage._counts) == ["someone-today"]
    reads: list[int] = []
    usage._counts["watched"] = _WatchedCount(now[0].date(), reads)
    for i in range(50):  # each a store read (not cached yet): none walks the other people's counts
        assert usage.used(f"later-{i}") == 7
    assert reads == [], f"50 reads on one day looked at another person's count {len(reads)} times"
    now[0] += timedelta(days=1)
    usage.used("the-day-after")
    assert "watched" not in usage._counts and reads, "the next day's first read did not sweep"


def test_an_unreadable_store_refuses_nobody():
    def read(owner, day):
        raise StoreError("down")

    usage = DailyUsage(read, 10, now=lambda: NOW)
    assert admitted(usage)
    assert usage.summary("alice") == "Tokens today: unknown (the history store did not answer)"


def test_next_reset_is_the_next_utc_midnight():
    assert next_reset(datetime(2025, 1, 2, 21, 47, tzinfo=UTC)) == datetime(2025, 1, 3, tzinfo=UTC)
    assert next_reset(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)


class DownStore(SqliteStore):
    """A store whose writes fail as if unreachable, so turns wait in the retry queue."""

    def save_turn(self, turn) -> None:
        raise StoreError("store down")


def test_turns_waiting_in_the_retry_queue_count_too(tmp_path):
    history = RetryingStore(DownStore(tmp_path / "down.sqlite3"), first_backoff_s=60)
    try:
        service = ChatService({"counting": CountingModel()}, history, 24_000, now=lambda: NOW)
        (*_, last) = turn(service, ChatSession(owner="alice"))
        assert last.saved is False
        assert history.tokens_used("alice", NOW.date()) == 43
        # A fresh read of the count (nothing cached) includes them too.
        assert not admitted(DailyUsage(history.tokens_used, 40, now=lambda: NOW))
    finally:
        history.close(timeout=0.1)


class FailingModel(CountingModel):
    """Fails before any text, as an unreachable model does."""

    def stream(self, messages, params, stats) -> Iterator[str]:
        self.calls += 1
        raise ModelError("the model is down")
        yield ""  # a generator, like the real ones


def test_parallel_requests_stop_at_the_limit_each_reserving_its_worst_case(history):
    # Each request may cost its prompt's estimate + max tokens (2 + 1024); the limit admits requests while
    # the count plus what is reserved is below it, so two start and the third is refused while they run.
    model = CountingModel()
    service = service_with(history, model, limit=2000)
    params = GenerationParams(max_tokens=1024)
    running = [service.reply(ChatSession(owner="alice"), Ask("hello", "counting", params)) for _ in range(3)]
    first, second, third = (next(r) for r in running)
    assert first.notice is None and second.notice is None
    assert third.done and third.text == "" and model.calls == 2
    assert third.notice == (
        "Your messages still being answered may use the rest of your 2,000 tokens for today (0 used so far): "
        "send this one when they have finished. Nothing was sent to the model."
    )
    for r in running[:2]:
        list(r)
    # Settled with their real usage (43 each): the reservations are gone, the next request goes through.
    assert service.usage.used("alice") == 86 == history.tokens_used("alice", NOW.date())
    assert turn(service, ChatSession(owner="alice"))[-1].notice is None


def test_a_failed_or_stopped_request_gives_its_reservation_back(history):
    usage = DailyUsage(history.tokens_used, 1060, now=lambda: NOW)
    failing = FailingModel()
    service = ChatService({"counting": failing}, history, 24_000, usage=usage, now=lambda: NOW)
    (failed,) = turn(service, ChatSession(owner="alice"))
    assert "down" in (failed.notice or "")
    counting = CountingModel()
    service = ChatService({"counting": counting}, history, 24_000, usage=usage, now=lambda: NOW)
    stopped = service.reply(ChatSession(owner="alice"), Ask("hello", "counting"))
    next(stopped)
    stopped.close()  # Stop: the partial reply is stored with its (estimated) usage
    assert usage.used("alice") > 0
    # Each reserved 1026 (2 + 1024 max tokens): 43 used + either one still held would be at the limit.
    assert turn(service, ChatSession(owner="alice"))[-1].notice is None


def test_a_thinking_models_reservation_covers_its_thinking_room():
    # Gemini 3 asks for Max tokens plus room for its thinking level, and thinking is billed as output: a
    # reservation of Max tokens alone would let parallel thinking requests overshoot the limit by ~9x.
    from chatapp.chat import worst_case
    from chatapp.conversation import Message
    from chatapp.models.gemini_request import THINKING_ROOM, gemini_options

    prompt = [Message("user", "x" * 400)]
    options = gemini_options("gemini-3.8-flash")
    plain = worst_case(prompt, GenerationParams(max_tokens=1024))
    assert worst_case(prompt, GenerationParams(max_tokens=1024), options) == plain + THINKING_ROOM["medium"]
    high = GenerationParams(max_tokens=1024, thinking="high")
    assert worst_case(prompt, high, options) == plain + THINKING_ROOM["high"]
