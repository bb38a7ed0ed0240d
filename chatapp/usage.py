"""Tokens each person used today (UTC), and the optional daily limit (CHAT_DAILY_TOKENS).

The stores keep the count: every saved turn adds its tokens to the owner's counter for that UTC day in the
same commit as the turn (no read). This module keeps a per-replica cache of those counters so that checking
the limit before a request costs nothing: a person's counter is read from the store once (the page reads it
on load to show it, so a browser's first message normally finds it cached), then kept up to date in memory
with every reply this replica serves.

Parallel requests: a request's cost is known only once it ends, so before calling a model it *reserves* its
worst case (the prompt's estimate + max tokens, `reserve`) and settles when it ends (the reply's real usage is
added with its turn, then the reservation is released: a failed or stopped request pays only what it used).
A request is admitted only while the counter plus what is reserved is below the limit, so however many are
sent at once, the day's total can pass the limit by at most one request's reservation (its prompt part is an
estimate: a provider that counts more prompt tokens than ~4 characters each can add that difference).

Across replicas and restarts: the stored counter is the truth (all replicas add to it atomically), and a
restarted replica reads it again. A replica does not see another's reservations, nor what it added since
its read, so a cached count is re-read when older than `refresh_s` (5 minutes): one read per person per 5
minutes at most, and with the load balancer's session affinity a person normally stays on one replica
anyway. If the store cannot be read, nobody is refused for it (only for their own requests in flight).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from chatapp.history.base import StoreError

log = logging.getLogger(__name__)

REFRESH_S = 300.0


@dataclass
class _Count:
    day: date
    tokens: int
    read_at: float


class OverLimit(Exception):
    """The request may not be sent: the message says why and when the limit resets."""


class Reservation:
    """What one request may still cost, counted against its owner until `release` (idempotent)."""

    def __init__(self, usage: DailyUsage | None, owner: str, tokens: int) -> None:
        self._usage, self.owner, self.tokens = usage, owner, tokens

    def release(self) -> None:
        usage, self._usage = self._usage, None
        if usage is not None:
            usage._release(self)


def next_reset(now: datetime) -> datetime:
    """The next UTC midnight after `now`, when every daily count starts again."""
    today = now.astimezone(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)


def _in(delta: timedelta) -> str:
    minutes = max(1, int(delta.total_seconds() + 59) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


class DailyUsage:
    def __init__(
        self,
        read: Callable[[str, date], int],
        limit: int | None = None,
        *,
        refresh_s: float = REFRESH_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`read(owner, day)` returns the stored count (a store's `tokens_used`); `limit` None = no limit."""
        self._read = read
        self.limit = limit
        self._refresh_s = refresh_s
        self._now = now
        self._clock = clock
        self._counts: dict[str, _Count] = {}
        self._reserved: dict[str, int] = {}  # owner -> tokens reserved by their requests in flight
        self._lock = threading.Lock()

    def used(self, owner: str) -> int | None:
        """Tokens the owner used today; None if the store could not be read."""
        today = self._now().astimezone(UTC).date()
        with self._lock:
            count = self._counts.get(owner)
            if count is not None and count.day == today and self._clock() - count.read_at < self._refresh_s:
                return count.tokens
        try:
            stored = self._read(owner, today)
        except StoreError as exc:
            log.warning("could not read today's usage: %s", exc)
            return None
        with self._lock:
            count = self._counts.get(owner)
            # A reply finished while we were reading may already be in `stored`, or not: keep the larger.
            if count is not None and count.day == today:
                stored = max(stored, count.tokens)
            self._counts[owner] = _Count(today, stored, self._clock())
            self._forget_old_days(today)
        return stored

    def add(self, owner: str, tokens: int, day: date) -> None:
        """Count a reply this replica just served (its turn carries the same number to the store)."""
        with self._lock:
            count = self._counts.get(owner)
            if count is not None and count.day == day:
                count.tokens += tokens
            # Otherwise the next check reads the store, which already includes this turn (or will).

    def reserve(self, owner: str, tokens: int) -> Reservation:
        """Count `tokens` (a request's worst case) against the owner until released; OverLimit when the owner
        is at the limit, counting what their requests in flight have reserved. Admitting while below the
        limit (not "while this one fits") lets a request through even when its worst case is larger than
        what is left, and bounds the overshoot by one reservation."""
        if self.limit is None:
            return Reservation(None, owner, tokens)
        stored = self.used(owner)
        with self._lock:
            count = self._counts.get(owner)
            used = count.tokens if count is not None and stored is not None else (stored or 0)
            reserved = self._reserved.get(owner, 0)
            if used + reserved < self.limit:
                self._reserved[owner] = reserved + tokens
                return Reservation(self, owner, tokens)
        if used >= self.limit:
            raise OverLimit(self._over(used))
        raise OverLimit(
            f"Your messages still being answered may use the rest of your {self.limit:,} tokens for today "
            f"({used:,} used so far): send this one when they have finished. Nothing was sent to the model."
        )

    def _release(self, reservation: Reservation) -> None:
        with self._lock:
            left = self._reserved.get(reservation.owner, 0) - reservation.tokens
            if left > 0:
                self._reserved[reservation.owner] = left
            else:
                self._reserved.pop(reservation.owner, None)

    def _over(self, used: int) -> str:
        assert self.limit is not None
        now = self._now()
        reset = next_reset(now)
        return (
            f"You have used your {self.limit:,} tokens for today ({used:,} used). The limit resets at "
            f"{reset:%H:%M} UTC (in {_in(reset - now)}); nothing was sent to the model."
        )

    def summary(self, owner: str) -> str:
        """One line for the page: usage today, and the limit when there is one."""
        used = self.used(owner)
        if used is None:
            return "Tokens today: unknown (the history store did not answer)"
        if self.limit is None:
            return f"Tokens today: {used:,}"
        reset = next_reset(self._now())
        return f"Tokens today: {used:,} of {self.limit:,} (resets {reset:%H:%M} UTC)"

    def report(self, owner: str) -> dict[str, object]:
        """For the API: tokens used today (None if unknown), the limit (None if none), when the day resets."""
        return {
            "tokens_today": self.used(owner),
            "limit": self.limit,
            "resets_at": next_reset(self._now()).isoformat(),
        }

    def _forget_old_days(self, today: date) -> None:
        # Caller holds the lock. A person who chatted yesterday is read again today anyway.
        for owner in [o for o, c in self._counts.items() if c.day != today]:
            del self._counts[owner]
