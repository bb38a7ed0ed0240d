"""What replicas must agree on, kept in the history store: the daily limit's reservations, which caller a
Gradio session hash belongs to, and failed sign-ins. Both stores implement `SharedState` (Firestore for
several replicas; SQLite, one process, the same way so both paths are the same code above the store).

Firestore layout (SQLite keeps the same in tables `usage_holds`, `session_bindings`, `sign_in_failures`):
  chat_usage/{day}_{hash of owner}   + holds: {hold_id: {tokens, until}}   reservations of requests in flight
  session_bindings/{sha256 of hash}  = {owner, created_at, expires_at}     first caller of a session hash
  sign_in_failures/{sha256 of key}   = {times: [newest failures], expires_at}  key: "user:…" or "addr:…"
`expires_at` is for the stack's Firestore TTL policy (stack/firestore.py deletes documents past it); nothing reads it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable

BINDINGS = "session_bindings"
SIGN_IN_FAILURES = "sign_in_failures"
BINDING_DAYS = 7  # a session hash is remembered this long (a Gradio tab open longer starts a new session)


@dataclass(frozen=True)
class Hold:
    """A request's worst case held against its owner's daily limit until released or `until` (epoch s)."""

    hold_id: str  # letters and digits only: it is a Firestore field name
    tokens: int
    until: float


@dataclass(frozen=True)
class Admission:
    admitted: bool
    used: int  # tokens stored for the day (every replica's turns)
    held: int  # what other live holds reserve, this one not included


def admit(used: int, held: int, limit: int) -> bool:
    """The one rule, in both stores: admitted while what is used plus what is held is below the limit, so the
    day's total passes it by at most one request's reservation."""
    return used + held < limit


def key_id(key: str) -> str:
    """A document id for any string (a session hash, a user name, an address may hold '/')."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@runtime_checkable
class SharedState(Protocol):
    def reserve_tokens(self, owner: str, day: date, hold: Hold, limit: int, now: float) -> Admission:
        """Atomically: read the day's count and live holds; add `hold` if `admit`. Raise StoreError."""
        ...

    def release_tokens(self, owner: str, day: date, hold_id: str) -> None:
        """Forget a hold (its turn's real usage is already counted). One write. Raise StoreError."""
        ...

    def bind_session(self, key: str, caller: str, now: float) -> str:
        """The owner of session hash `key`: `caller` when nobody held it (create-if-absent). Raise StoreError."""
        ...

    def sign_in_failures(self, keys: list[str]) -> dict[str, list[float]]:
        """The newest failure times (epoch s) kept for each key. Raise StoreError."""
        ...

    def add_sign_in_failure(self, keys: list[str], at: float, keep: int, window_s: float) -> None:
        """Record a failure at `at` for each key, keeping its newest `keep`. Raise StoreError."""
        ...


def shared_state(store: object) -> SharedState | None:
    """The store itself when it keeps shared state (both real stores do; a test's fake may not)."""
    return store if isinstance(store, SharedState) else None
