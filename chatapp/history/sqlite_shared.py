"""SQLite's side of `history.shared.SharedState`: the same rules as Firestore's, each call one IMMEDIATE
transaction (so two threads reserving at once see each other's holds)."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import date
from typing import Protocol

from chatapp.history.shared import BINDING_DAYS, Admission, Hold, admit


class _Db(Protocol):
    def _transaction(self, action: str) -> AbstractContextManager[sqlite3.Connection]: ...


class SqliteShared:
    """Mixed into SqliteStore, whose `_transaction` it uses."""

    def reserve_tokens(self: _Db, owner: str, day: date, hold: Hold, limit: int, now: float) -> Admission:
        with self._transaction("reserving tokens") as conn:
            conn.execute("DELETE FROM usage_holds WHERE owner = ? AND until <= ?", (owner, now))
            row = conn.execute(
                "SELECT tokens FROM daily_usage WHERE owner = ? AND day = ?", (owner, day.isoformat())
            ).fetchone()
            used = int(row[0]) if row else 0
            (held,) = conn.execute(
                "SELECT COALESCE(SUM(tokens), 0) FROM usage_holds WHERE owner = ? AND day = ?",
                (owner, day.isoformat()),
            ).fetchone()
            ok = admit(used, int(held), limit)
            if ok:
                conn.execute(
                    "INSERT OR REPLACE INTO usage_holds (owner, day, hold_id, tokens, until) VALUES (?, ?, ?, ?, ?)",
                    (owner, day.isoformat(), hold.hold_id, hold.tokens, hold.until),
                )
        return Admission(ok, used, int(held))

    def release_tokens(self: _Db, owner: str, day: date, hold_id: str) -> None:
        with self._transaction("releasing reserved tokens") as conn:
            conn.execute(
                "DELETE FROM usage_holds WHERE owner = ? AND day = ? AND hold_id = ?",
                (owner, day.isoformat(), hold_id),
            )

    def bind_session(self: _Db, key: str, caller: str, now: float) -> str:
        with self._transaction("binding a session") as conn:
            if random.random() < 1 / 512:  # now and then, not per call: a scan of the table
                conn.execute("DELETE FROM session_bindings WHERE created_at < ?", (now - BINDING_DAYS * 86_400,))
            conn.execute(
                "INSERT OR IGNORE INTO session_bindings (key, owner, created_at) VALUES (?, ?, ?)", (key, caller, now)
            )
            (owner,) = conn.execute("SELECT owner FROM session_bindings WHERE key = ?", (key,)).fetchone()
        return str(owner)

    def sign_in_failures(self: _Db, keys: list[str]) -> dict[str, list[float]]:
        with self._transaction("reading failed sign-ins") as conn:
            return {key: _times(conn, key) for key in keys}

    def add_sign_in_failure(self: _Db, keys: list[str], at: float, keep: int, window_s: float) -> None:
        with self._transaction("counting a failed sign-in") as conn:
            # Rows of keys that stopped failing go here (Firestore's TTL policy does it there): a sign-in
            # sprayed over many user names must not grow the file for ever. NULL: written before the column.
            conn.execute("DELETE FROM sign_in_failures WHERE expires_at IS NULL OR expires_at <= ?", (at,))
            for key in keys:
                times = [t for t in _times(conn, key) if at - t < window_s][-(keep - 1) :] if keep > 1 else []
                conn.execute(
                    "INSERT OR REPLACE INTO sign_in_failures (key, times, expires_at) VALUES (?, ?, ?)",
                    (key, json.dumps([*times, at]), at + window_s),
                )


def _times(conn: sqlite3.Connection, key: str) -> list[float]:
    row = conn.execute("SELECT times FROM sign_in_failures WHERE key = ?", (key,)).fetchone()
    return list(_floats(row[0])) if row else []


def _floats(raw: str) -> Iterator[float]:
    try:
        value = json.loads(raw)
    except ValueError:
        return
    if isinstance(value, list):
        yield from (float(t) for t in value if isinstance(t, int | float))
