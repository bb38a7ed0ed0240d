"""Gradio session hashes and event ids → the caller that owns them.

Gradio keys per-tab state and queued events by ids the client sends (`session_hash`, and event ids it takes for
session hashes when it does not know them). A session hash belongs to the first caller that uses it; an event id
belongs to the caller Gradio answered it to. Anyone else presenting one is refused.

- **Session hashes** (`bind`) are bound in the history store (chatapp.history.shared: create-if-absent), so
  every replica agrees on who was first, whichever replica each of them reached; this replica keeps a cache of
  the answers. The cache may forget anything (a flood of new sessions only costs a store read later), so it is
  a plain LRU. A new session costs one store call, off the event loop; a known one, a dictionary look-up. If
  the store does not answer, the first caller *on this replica* holds it here (a tab must still open during a
  store outage; the hash is the tab's own random id, so this only matters to someone who already knows it).
- **Event ids** (`claim`) live only where Gradio runs the event, so they stay in this process. A flood must
  neither evict them nor grow memory: an id is forgotten only once idle for EVENT_LIVE_S; when the map is full
  of younger ones a new id is refused (its caller is told to try again) instead.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import anyio

from chatapp.history.base import StoreError
from chatapp.history.shared import SharedState

log = logging.getLogger(__name__)

SESSIONS_REMEMBERED = 200_000  # bound on each map (~40 MB at worst)
EVENT_LIVE_S = 900.0  # an event id in use is read within seconds of being answered; after this it is dead


class SessionOwners:
    def __init__(
        self,
        capacity: int = SESSIONS_REMEMBERED,
        shared: SharedState | None = None,
        *,
        live_s: float = EVENT_LIVE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`shared`: the store that binds session hashes for every replica (None: this process decides alone,
        under the same no-eviction rule as event ids)."""
        self.capacity = capacity
        self._shared = shared
        self._live_s = live_s
        self._clock = clock
        self._sessions: OrderedDict[str, str] = OrderedDict()  # a cache of the store's bindings
        self._owners: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key → (owner, last used)

    def claim(self, key: str, caller: str) -> bool:
        """Whether `caller` may use `key` (an event id, or a session hash without a store): it becomes theirs if
        nobody holds it yet and there is room."""
        now = self._clock()
        held = self._owners.get(key)
        if held is not None:
            if held[0] != caller:
                return False
            self._owners[key] = (caller, now)
            self._owners.move_to_end(key)
            return True
        while len(self._owners) >= self.capacity:
            oldest, (_, used) = next(iter(self._owners.items()))
            if now - used < self._live_s:  # everything held is in use: refuse the new one, evict nobody
                log.warning("refused a new session or event: %d are in use", len(self._owners))
                return False
            del self._owners[oldest]
        self._owners[key] = (caller, now)
        return True

    def owner(self, key: str) -> str | None:
        held = self._owners.get(key)
        return held[0] if held is not None else self._sessions.get(key)

    async def bind(self, key: str, caller: str) -> bool:
        """Whether `caller` may use session hash `key`, as every replica sharing the store judges it."""
        if self._shared is None or key in self._owners:  # no store, or an event id Gradio takes for a session
            return self.claim(key, caller)
        owner = self._sessions.get(key)
        if owner is None:
            try:
                owner = await anyio.to_thread.run_sync(self._shared.bind_session, key, caller, time.time())
            except StoreError as exc:
                log.warning("could not bind a session in the store, binding it on this replica: %s", exc)
                owner = caller
            owner = self._sessions.setdefault(key, owner)  # another request may have answered meanwhile
        self._sessions.move_to_end(key)
        if len(self._sessions) > self.capacity:
            self._sessions.popitem(last=False)  # only a cache: the store still knows it
        return owner == caller
