"""Gradio session hashes and event ids → the caller that owns them.

Gradio keys per-tab state and queued events by ids the client sends (`session_hash`, and event ids it takes for
session hashes when it does not know them). A session hash belongs to the first caller that uses it; an event id
belongs to the caller Gradio answered it to. Anyone else presenting one is refused.
"""

from __future__ import annotations

from collections import OrderedDict

SESSIONS_REMEMBERED = 200_000  # bound on the map (~40 MB at worst); the least recently used are forgotten


class SessionOwners:
    def __init__(self, capacity: int = SESSIONS_REMEMBERED) -> None:
        self.capacity = capacity
        self._owners: OrderedDict[str, str] = OrderedDict()

    def claim(self, key: str, caller: str) -> bool:
        """Whether `caller` may use `key`: it becomes theirs if nobody holds it yet."""
        owner = self._owners.setdefault(key, caller)
        self._owners.move_to_end(key)
        if len(self._owners) > self.capacity:
            self._owners.popitem(last=False)  # the oldest: a live tab keeps refreshing its own
        return owner == caller

    def owner(self, key: str) -> str | None:
        return self._owners.get(key)
