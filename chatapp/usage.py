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

Across replicas: with `shared` (the history store, chatapp.history.shared) the reservation itself is made in
the store, atomically against the stored count and every replica's reservations (one transaction per turn to
reserve, one write to release; nothing per streamed chunk), so alternating replicas stop at the limit like one
does, and a refusal quotes the stored count. A reservation whose replica died ends by itself after HOLD_S.
The cached count only serves the page's "Tokens today" line; it is re-read when older than `refresh_s` and
set from the store by every reservation. If the store does not answer within STORE_WAIT_S, the request is
judged on this replica's own count and reservations (nobody is refused for an outage).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitedTooLong
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from chatapp.history.base import StoreError
from chatapp.history.shared import Hold, SharedState

log = logging.getLogger(__name__)

REFRESH_S = 300.0
HOLD_S = 900.0  # a reservation outlives any reply; one left by a replica that died ends after this
STORE_WAIT_S = 3.0  # a reservation waits no longer on the store (a transaction has no overall deadline)


@dataclass
class _Count:
    day: date
    tokens: int
    read_at: float


class OverLimit(Exception):
    """The request may not be sent: the message says why and when the limit resets."""


class Reservation:
    """What one request may still cost, counted against its owner until `release` (idempotent)."""

    def __init__(
        self, usage: DailyUsage | None, owner: str, tokens: int, stored: tuple[date, str] | None = None
    ) -> None:
        self._usage, self.owner, self.tokens = usage, owner, tokens
        self.stored = stored  # (day, hold id) when the hold is in the store, None when in this replica only

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
        shared: SharedState | None = None,
    ) -> None:
        """`read(owner, day)` returns the stored count (a store's `tokens_used`); `limit` None = no limit;
        `shared`: the store that keeps reservations every replica sees (None: this replica's memory)."""
        self._read = read
        self._shared = shared
        self._calls = ThreadPoolExecutor(4, "usage-store") if shared is not None else None
        self.limit = limit
        self._refresh_s = refresh_s
        self._now = now
        self._clock = clock
        self._counts: dict[str, _Count] = {}
        self._swept: date | None = None  # the day older counts were last dropped (once a day, not every read)
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
        if self._shared is not None:
            reservation = self._reserve_in_store(owner, tokens, self.limit)
            if reservation is not None:
                return reservation
        stored = self.used(owner)
        with self._lock:
            count = self._counts.get(owner)
            used = count.tokens if count is not None and stored is not None else (stored or 0)
            reserved = self._reserved.get(owner, 0)
            if used + reserved < self.limit:
                self._reserved[owner] = reserved + tokens
                return Reservation(self, owner, tokens)
        raise OverLimit(self._refusal(used))

    def _reserve_in_store(self, owner: str, tokens: int, limit: int) -> Reservation | None:
        """The reservation made in the shared store, OverLimit, or None when the store did not answer."""
        assert self._shared is not None and self._calls is not None
        today = self._now().astimezone(UTC).date()
        hold = Hold("h" + secrets.token_hex(8), tokens, time.time() + HOLD_S)
        call = self._calls.submit(self._shared.reserve_tokens, owner, today, hold, limit, time.time())
        try:
            answer = call.result(timeout=STORE_WAIT_S)
        except (StoreError, WaitedTooLong) as exc:
            # A late answer may still add the hold: it ends after HOLD_S, and errs towards the limit.
            log.warning("could not reserve in the store, judging on this replica's count: %s", str(exc) or "timed out")
            return None
        with self._lock:
            count = self._counts.get(owner)
            if count is None or count.day != today or answer.used >= count.tokens:
                self._counts[owner] = _Count(today, answer.used, self._clock())
        if answer.admitted:
            return Reservation(self, owner, tokens, (today, hold.hold_id))
        raise OverLimit(self._refusal(answer.used))

    def _refusal(self, used: int) -> str:
        assert self.limit is not None
        if used >= self.limit:
            return self._over(used)
        return (
            f"Your messages still being answered may use the rest of your {self.limit:,} tokens for today "
            f"({used:,} used so far): send this one when they have finished. Nothing was sent to the model."
        )

    def _release(self, reservation: Reservation) -> None:
        if reservation.stored is not None:
            assert self._shared is not None
            try:  # after the turn was saved: its real usage is in the count the hold gives way to
                self._shared.release_tokens(reservation.owner, *reservation.stored)
            except StoreError as exc:
                log.warning("could not release reserved tokens (they are freed after %.0f s): %s", HOLD_S, exc)
            return
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
        # Caller holds the lock. A person who chatted yesterday is read again today anyway. Once per day: a walk
        # of every person counted on each read would cost each store read (and the lock) more as a day goes on.
        if today == self._swept:
            return
        self._swept = today
        for owner in [o for o, c in self._counts.items() if c.day != today]:
            del self._counts[owner]
