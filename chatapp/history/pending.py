"""A store wrapper that never loses a turn silently.

`save(turn)` returns True when the turn is stored. When the store is down it keeps the turn in an in-order
queue and returns False (the UI says "not saved yet, will retry"); a daemon thread retries with backoff and
reports each late save through `on_saved`. While anything is queued, new turns queue behind it, so turns of a
session are written in order — and a replayed turn is harmless because stores write turns idempotently.
Reads and deletes pass through, aware of the queue: a reload shows queued turns, and deleting a
conversation drops its queued turns so a late retry cannot bring it back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import date

from chatapp.history.base import (
    ChatStore,
    SearchHit,
    SessionNotFound,
    SessionSummary,
    StoredMessage,
    StoreError,
    Turn,
    Unanswered,
    check_turn,
)

log = logging.getLogger(__name__)


class RetryingStore:
    def __init__(
        self,
        store: ChatStore,
        *,
        on_saved: Callable[[Turn], None] | None = None,
        on_dropped: Callable[[Turn, StoreError], None] | None = None,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        """`on_saved(turn)` runs when a queued turn gets stored (on the retry thread, or on the thread of a later
        save that wrote it first; it can also fire for a turn queued behind others whose save() then returned
        True, so treat it as an idempotent "saved" signal). `on_dropped(turn, error)` runs when the store
        refuses a queued turn for good (error.transient is False)."""
        self.store = store
        self._on_saved = on_saved
        self._on_dropped = on_dropped
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._backoff_s = first_backoff_s
        self._queue: list[Turn] = []
        self._cond = threading.Condition()  # guards _queue, _next_try, _closing
        self._draining = threading.Lock()  # one writer of queued turns at a time keeps them in order
        self._next_try = 0.0
        self._closing = False
        self._thread = threading.Thread(target=self._retry_loop, name="history-retry", daemon=True)
        self._thread.start()

    # -- sending ---------------------------------------------------------------------------------------
    def save(self, turn: Turn) -> bool:
        """Store the turn or queue it. True = stored now. Raises StoreError only for a turn no retry can
        save (error.transient is False, e.g. too large), so the UI can say so instead of promising a retry.

        Order is kept per session as long as one session's turns are saved one after another (the chat
        saves a turn before it accepts the next message)."""
        check_turn(turn)
        store_down = False
        with self._cond:
            queued = bool(self._queue)
            if queued:
                self._queue.append(turn)
                store_down = time.monotonic() < self._next_try
        if not queued:
            try:
                self.store.save_turn(turn)
                return True
            except StoreError as exc:
                if not exc.transient:
                    raise
                log.warning("history: turn %s#%d not saved, will retry: %s", turn.session_id, turn.index, exc)
                with self._cond:
                    self._queue.append(turn)
                    self._failed()
                return False
        # Older turns are waiting: unless the store just failed (answer at once, the retry thread is on
        # it), write them and then this one, in order, on this thread.
        if not store_down and self._draining.acquire(timeout=1.0):
            try:
                refused = self._drain(own=turn)
            finally:
                self._draining.release()
            if refused is not None:
                raise refused
        with self._cond:
            return not any(t is turn for t in self._queue)

    def _failed(self) -> None:
        # Caller holds _cond. Jitter keeps several replicas from retrying in lockstep.
        self._next_try = time.monotonic() + self._backoff_s * random.uniform(0.8, 1.2)
        self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)
        self._cond.notify_all()

    def _drain(self, own: Turn | None = None) -> StoreError | None:
        """Write queued turns oldest first; stop at the first transient failure. Caller holds _draining.
        Returns the error if the store refused `own` for good (its caller reports it, not on_dropped)."""
        refused: StoreError | None = None
        while True:
            with self._cond:
                if not self._queue:
                    self._backoff_s = self._first_backoff_s
                    self._cond.notify_all()
                    return refused
                turn = self._queue[0]
            try:
                self.store.save_turn(turn)
            except StoreError as exc:
                if exc.transient:
                    with self._cond:
                        self._failed()
                    log.warning("history: %d turn(s) still unsaved: %s", self.pending_count(), exc)
                    return refused
                log.error("history: dropping turn %s#%d, the store refuses it: %s", turn.session_id, turn.index, exc)
                self._remove(turn)
                if turn is own:
                    refused = exc
                else:
                    self._notify(self._on_dropped, turn, exc)
                continue
            self._remove(turn)
            if turn is not own:  # `own` is reported to its caller by save()'s return value
                log.info("history: turn %s#%d saved after a retry", turn.session_id, turn.index)
                self._notify(self._on_saved, turn)

    def _remove(self, turn: Turn) -> None:
        with self._cond:
            if self._queue and self._queue[0] is turn:  # a delete may have dropped it meanwhile
                self._queue.pop(0)
            self._cond.notify_all()

    @staticmethod
    def _notify(callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a UI callback must not kill the retry thread
            log.exception("history: callback failed")

    def _retry_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (not self._queue or time.monotonic() < self._next_try):
                    wait = None if not self._queue else max(self._next_try - time.monotonic(), 0.0)
                    self._cond.wait(wait)
                if self._closing and not self._queue:
                    return
                if self._closing and time.monotonic() < self._next_try:
                    return  # close() gave up waiting; the queue is logged there
            with self._draining:
                self._drain()

    # -- state -------------------------------------------------------------------------------------------
    def pending_count(self) -> int:
        with self._cond:
            return len(self._queue)

    def flush(self, timeout: float | None = None) -> bool:
        """Retry now and wait until nothing is queued or `timeout` passes. True = all saved."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._next_try = 0.0
            self._backoff_s = self._first_backoff_s
            self._cond.notify_all()
            while self._queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Try to save what is queued (for shutdown), stop the retry thread, close the store."""
        saved = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            lost = list(self._queue)
        self._thread.join(timeout=max(timeout, 1.0))
        for turn in lost if not saved else []:
            log.error("history: turn %s#%d was never saved (store down at shutdown)", turn.session_id, turn.index)
        self.store.close()

    # -- reads that know about the queue -------------------------------------------------------------------
    def load_messages(self, session_id: str, owner: str) -> list[StoredMessage]:
        with self._cond:
            queued = [t for t in self._queue if t.session_id == session_id and t.owner == owner]
        try:
            stored = self.store.load_messages(session_id, owner)
        except SessionNotFound:
            if not queued:
                raise
            stored = []  # the whole conversation is still queued (its first turn included)
        extra: dict[int, StoredMessage] = {}
        for t in queued:
            extra[2 * t.index] = StoredMessage("user", t.user, None, t.created_at, 2 * t.index, images=t.user_images)
            extra[2 * t.index + 1] = StoredMessage(
                "assistant", t.assistant, t.model, t.created_at, 2 * t.index + 1, t.usage
            )
        merged = [m for m in stored if m.seq not in extra] + list(extra.values())
        return sorted(merged, key=lambda m: m.seq)

    def list_sessions(self, owner: str, limit: int = 50) -> list[SessionSummary]:
        return self.store.list_sessions(owner, limit)

    def delete_session(self, session_id: str, owner: str) -> None:
        # Holding _draining means no queued turn of this session is being written while it is deleted.
        with self._draining:
            self._delete(session_id, owner)

    def _delete(self, session_id: str, owner: str) -> None:
        with self._cond:
            before = len(self._queue)
            self._queue = [t for t in self._queue if not (t.session_id == session_id and t.owner == owner)]
            dropped = before - len(self._queue)
            self._cond.notify_all()
        try:
            self.store.delete_session(session_id, owner)
        except SessionNotFound:
            if not dropped:  # it existed only in the queue: deleting it there is the whole job
                raise

    def truncate(self, session_id: str, owner: str, turns: int, shown: int | None = None) -> None:
        with self._draining:  # no queued turn is written meanwhile
            try:  # first: a store that refuses (TurnsChanged, an outage) leaves the queued turns queued too
                self.store.truncate(session_id, owner, turns, shown)
                stored = True
            except SessionNotFound:
                stored = False
            with self._cond:
                before = len(self._queue)
                self._queue = [
                    t for t in self._queue if not (t.session_id == session_id and t.owner == owner and t.index >= turns)
                ]
                dropped = before - len(self._queue)
                self._cond.notify_all()
            if not stored and not dropped:
                raise SessionNotFound()

    def tokens_used(self, owner: str, day: date) -> int:
        """The store's count plus the turns still queued (their increments are not written yet)."""
        with self._cond:
            queued = sum(t.usage.total for t in self._queue if t.usage and t.owner == owner and t.day == day)
        return self.store.tokens_used(owner, day) + queued

    # Managing conversations passes straight through: none of it is on the send path, and a conversation
    # whose turns are all still queued is not stored yet (SessionNotFound), which callers already handle.
    def describe_session(self, session_id: str, owner: str) -> SessionSummary:
        return self.store.describe_session(session_id, owner)

    def rename_session(self, session_id: str, owner: str, title: str) -> None:
        self.store.rename_session(session_id, owner, title)

    def search_sessions(self, owner: str, query: str, limit: int = 20) -> list[SearchHit]:
        return self.store.search_sessions(owner, query, limit)

    def save_unanswered(self, session_id: str, owner: str, unanswered: Unanswered) -> None:
        self.store.save_unanswered(session_id, owner, unanswered)

    def clear_unanswered(self, session_id: str, owner: str) -> None:
        self.store.clear_unanswered(session_id, owner)

    def ping(self) -> None:
        self.store.ping()
