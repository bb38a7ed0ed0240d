"""The daily limit's promises (`chatapp.usage.DailyUsage`) through its public interface, with the clock and the
stored count in the test's hands: when the day ends, what a refusal says, what reservations hold back."""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from chatapp.history.base import StoreError
from chatapp.usage import DailyUsage, OverLimit, next_reset

DAY = date(2026, 12, 6)


class Stored:
    """The store's per-day counter, as `tokens_used(owner, day)` answers it; remembers what was asked."""

    def __init__(self, tokens: int = 0) -> None:
        self.tokens = tokens
        self.asked: list[tuple[str, date]] = []
        self.down = False

    def __call__(self, owner: str, day: date) -> int:
        self.asked.append((owner, day))
        if self.down:
            raise StoreError("the store did not answer")
        return self.tokens


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, 6, hour, minute, second, tzinfo=UTC)


def refusal(now: datetime) -> str:
    usage = DailyUsage(Stored(100), 100, now=lambda: now)
    with pytest.raises(OverLimit) as refused:
        usage.reserve("ada", 10)
    return str(refused.value)


@pytest.mark.parametrize(
    "now, wait",
    [
        (at(22, 0, 0), "in 2 h 00 min"),  # a whole number of minutes is not rounded up
        (at(21, 59, 59), "in 2 h 01 min"),  # a part of a minute is
        (at(23, 55, 0), "in 5 min"),  # under an hour: minutes only
        (at(23, 59, 30), "in 1 min"),  # never "in 0 min"
        (at(0, 0, 0), "in 24 h 00 min"),
    ],
)
def test_a_refusal_says_when_the_limit_resets(now, wait):
    message = refusal(now)
    assert "resets at 00:00 UTC" in message and f"({wait})" in message, message


def test_the_day_is_the_utc_day_whatever_the_machines_time_zone(monkeypatch):
    # 23:30 UTC is already the next day in Kiritimati (UTC+14) and still the same day in New York.
    late = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    elsewhere = late.astimezone(timezone(timedelta(hours=-8)))  # the same instant, given in another zone
    try:
        for zone in ("Pacific/Kiritimati", "America/New_York"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            assert next_reset(late) == next_reset(elsewhere) == datetime(2026, 12, 7, tzinfo=UTC)
            stored = Stored()
            DailyUsage(stored, 100, now=lambda: elsewhere).used("ada")
            assert stored.asked == [("ada", DAY)]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_cached_count_is_read_again_once_it_is_refresh_s_old():
    stored, clock = Stored(5), Clock()
    usage = DailyUsage(stored, 100, refresh_s=300.0, now=lambda: at(12), clock=clock)
    assert usage.used("ada") == 5
    clock.t += 299.9
    assert usage.used("ada") == 5 and len(stored.asked) == 1
    clock.t += 0.1  # exactly refresh_s old
    stored.tokens = 7
    assert usage.used("ada") == 7 and len(stored.asked) == 2


def test_a_reply_counted_here_is_not_lost_when_the_store_lags_behind():
    stored, clock = Stored(100), Clock()
    usage = DailyUsage(stored, 1000, now=lambda: at(12), clock=clock)
    assert usage.used("ada") == 100
    usage.add("ada", 50, DAY)  # served here; its turn has not reached the store yet
    clock.t += 301.0
    stored.tokens = 120
    assert usage.used("ada") == 150


def test_an_unreadable_store_refuses_nobody_and_says_why_in_the_log(caplog):
    stored = Stored()
    stored.down = True
    usage = DailyUsage(stored, 1, now=lambda: at(12))
    with caplog.at_level(logging.WARNING, logger="chatapp.usage"):
        usage.reserve("ada", 500).release()
    assert [r.getMessage() for r in caplog.records] == ["could not read today's usage: the store did not answer"]
    assert usage.report("ada") == {"tokens_today": None, "limit": 1, "resets_at": "2026-12-07T00:00:00+00:00"}


def test_releasing_one_reservation_leaves_the_others_held():
    stored = Stored(0)
    usage = DailyUsage(stored, 10, now=lambda: at(12))
    first, second = usage.reserve("ada", 5), usage.reserve("ada", 1)
    first.release()
    first.release()  # twice: nothing more is given back
    usage.add("ada", 9, DAY)  # 9 used + the 1 still reserved: at the limit
    with pytest.raises(OverLimit, match="still being answered"):
        usage.reserve("ada", 1)
    second.release()
    usage.reserve("ada", 1)  # 9 used, nothing reserved: below


def test_another_persons_reservations_are_theirs():
    usage = DailyUsage(Stored(9), 10, now=lambda: at(12))  # each of them used 9 today
    usage.reserve("bob", 5)
    usage.reserve("ada", 1)  # bob's reservation counts against bob only


def test_without_a_limit_a_reservation_still_names_its_owner_and_cost():
    usage = DailyUsage(Stored(10**9), None, now=lambda: at(12))
    reservation = usage.reserve("ada", 42)
    assert (reservation.owner, reservation.tokens) == ("ada", 42)
    reservation.release()
    assert usage.report("ada") == {"tokens_today": 10**9, "limit": None, "resets_at": "2026-12-07T00:00:00+00:00"}


def test_a_reservation_of_nothing_is_released_cleanly_after_the_others():
    usage = DailyUsage(Stored(0), 10, now=lambda: at(12))
    held, nothing = usage.reserve("ada", 5), usage.reserve("ada", 0)
    held.release()
    nothing.release()  # its owner has nothing reserved any more: no error, nothing left over
    usage.add("ada", 9, DAY)
    usage.reserve("ada", 1)  # 9 used, nothing reserved


def test_a_stale_count_is_not_held_against_anyone_while_the_store_is_down():
    stored, clock = Stored(100), Clock()
    usage = DailyUsage(stored, 100, now=lambda: at(12), clock=clock)
    assert usage.used("ada") == 100  # at the limit, cached
    clock.t += 301.0  # the cached count is stale, and the store does not answer
    stored.down = True
    usage.reserve("ada", 10).release()  # nobody is refused for an outage


def test_the_report_is_the_callers_own():
    usage = DailyUsage(lambda owner, day: {"ada": 7, "bob": 9}.get(owner, 0), 100, now=lambda: at(12))
    assert usage.report("ada")["tokens_today"] == 7
    assert usage.report("bob")["tokens_today"] == 9
