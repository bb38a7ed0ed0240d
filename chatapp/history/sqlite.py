"""SQLite history: the local default, with the same logical shape as the Firestore layout.

One connection per thread (Gradio runs handlers in a pool of up to 64 threads): in WAL mode readers never
wait for the writer, and each turn is one short IMMEDIATE transaction, so writers queue on SQLite's own lock
(busy timeout) instead of failing with "database is locked".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from chatapp.history import search
from chatapp.history.base import (
    SearchHit,
    SessionNotFound,
    SessionSummary,
    StoredMessage,
    StoreError,
    Turn,
    TurnsChanged,
    Unanswered,
    Usage,
    check_turn,
    images_from,
    images_json,
    title_of,
    valid_session_id,
)
from chatapp.history.sqlite_schema import ADDED_COLUMNS, QUERY_SCHEMA, SCHEMA, SLOT, TITLE_SEQ, add_search
from chatapp.history.sqlite_shared import SqliteShared

log = logging.getLogger(__name__)


def _stored_turns(conn: sqlite3.Connection, session_id: str) -> int:
    """How many turns the conversation has stored: the place after its last."""
    (last,) = conn.execute("SELECT MAX(seq) FROM messages WHERE session_id = ?", (session_id,)).fetchone()
    return 0 if last is None else last // 2 + 1


def _unanswered(raw: str | None) -> Unanswered | None:
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return Unanswered(str(d["text"]), str(d["error"]), int(d["after_turns"]), _moment(int(d["created_at"])))
    except (ValueError, KeyError, TypeError):
        return None  # a damaged record must not make the conversation unreadable


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:  # a naive time is taken as UTC, as Firestore's client does
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int) -> datetime:
    seconds, rest = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)


class SqliteStore(SqliteShared):
    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        if str(path) == ":memory:":
            raise StoreError("SqliteStore needs a file: each thread opens its own connection", transient=False)
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with self._errors("opening"):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the file
            conn.executescript(SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            add_search(conn)  # after the columns: its triggers read custom_title

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the history store {self._path} is closed", transient=False)
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves; check_same_thread=False only so close() can
            # close every thread's connection — each connection is still used by its own thread alone.
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA foreign_keys=ON")  # per connection; drives the delete cascade
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, fast commits
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite history {self._path}: {action} failed: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"SQLite history {self._path}: {action} failed: {exc}") from exc

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._errors(action):
            conn = self._conn()
            # IMMEDIATE takes the write lock up front, so two writers never deadlock upgrading a read lock.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _check_owner(self, conn: sqlite3.Connection, session_id: str, owner: str) -> None:
        row = conn.execute("SELECT owner FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        if row is None or row[0] is None or row[0] != owner:
            raise SessionNotFound()

    def save_turn(self, turn: Turn) -> None:
        check_turn(turn)
        at = _micros(turn.created_at)
        with self._transaction("saving a turn") as conn:
            row = conn.execute("SELECT owner FROM sessions WHERE session_id = ?", (turn.session_id,)).fetchone()
            # Firestore cannot check this without a read; here it is free, so refuse writing into another
            # owner's conversation.
            if row is not None and row[0] is not None and row[0] != turn.owner:
                raise SessionNotFound()
            # Retry replaces the last stored turn only: from a copy that missed turns, its place holds another.
            replaces = turn.replaces and turn.index == _stored_turns(conn, turn.session_id) - 1
            index = turn.index if replaces else self._free_place(conn, turn, at)
            if index is None:
                return  # this very turn is stored already (saved again after a lost answer)
            turn = dataclasses.replace(turn, index=index)
            if turn.index == 0:
                conn.execute(
                    "INSERT INTO sessions (session_id, owner, title, created_at, updated_at, turns)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
                    " owner = excluded.owner, title = excluded.title, created_at = excluded.created_at,"
                    " updated_at = excluded.updated_at, turns = excluded.turns",
                    (turn.session_id, turn.owner, turn.title, at, at, 1),
                )
            else:  # like the Firestore merge: owner/title/created_at come from turn 0 only
                conn.execute(
                    "INSERT INTO sessions (session_id, updated_at, turns) VALUES (?, ?, ?)"
                    " ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at, turns = excluded.turns",
                    (turn.session_id, at, turn.index + 1),
                )
            usage = turn.usage
            cost = (usage.tokens_in, usage.tokens_out, int(usage.estimated)) if usage else (None, None, None)
            user_images = images_json(turn.user_images)
            conn.executemany(
                "INSERT OR REPLACE INTO messages (session_id, seq, role, content, model, created_at,"
                " tokens_in, tokens_out, tokens_estimated, images) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (turn.session_id, 2 * turn.index, "user", turn.user, None, at, None, None, None, user_images),
                    (turn.session_id, 2 * turn.index + 1, "assistant", turn.assistant, turn.model, at, *cost, None),
                ],
            )
            if usage is not None and usage.total > 0:  # a turn saved again returned above: counted once
                conn.execute(
                    "INSERT INTO daily_usage (owner, day, tokens) VALUES (?, ?, ?)"
                    " ON CONFLICT (owner, day) DO UPDATE SET tokens = tokens + excluded.tokens",
                    (turn.owner, turn.day.isoformat(), usage.total),
                )

    @staticmethod
    def _free_place(conn: sqlite3.Connection, turn: Turn, at: int) -> int | None:
        """The turn's own place if free, None if the turn itself is there, else the place after the last turn
        (see Turn). Inside the save's transaction, so no other save comes between."""
        reply = conn.execute(
            "SELECT content, created_at FROM messages WHERE session_id = ? AND seq = ?",
            (turn.session_id, 2 * turn.index + 1),
        ).fetchone()
        if reply is None:
            return turn.index
        if tuple(reply) == (turn.assistant, at):
            return None
        place = _stored_turns(conn, turn.session_id)
        log.warning("turn %s#%d: another turn is stored there; saved as turn %d", turn.session_id, turn.index, place)
        return place

    def load_messages(self, session_id: str, owner: str) -> list[StoredMessage]:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        # A read transaction so the owner check and the messages come from the same snapshot.
        with self._errors("loading a conversation"):
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                self._check_owner(conn, session_id, owner)
                rows = conn.execute(
                    "SELECT role, content, model, created_at, seq, tokens_in, tokens_out, tokens_estimated, images"
                    " FROM messages WHERE session_id = ? ORDER BY seq",
                    (session_id,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        return [
            StoredMessage(
                role,
                content,
                model,
                _moment(at),
                seq,
                Usage(tokens_in, tokens_out, bool(estimated))
                if tokens_in is not None and tokens_out is not None
                else None,
                images_from(images),
            )
            for role, content, model, at, seq, tokens_in, tokens_out, estimated, images in rows
        ]

    def tokens_used(self, owner: str, day: date) -> int:
        with self._errors("reading today's usage"):
            row = (
                self._conn()
                .execute("SELECT tokens FROM daily_usage WHERE owner = ? AND day = ?", (owner, day.isoformat()))
                .fetchone()
            )
        return int(row[0]) if row else 0

    def list_sessions(self, owner: str, limit: int = 50) -> list[SessionSummary]:
        with self._errors("listing conversations"):
            rows = (
                self._conn()
                .execute(
                    "SELECT session_id, owner, COALESCE(custom_title, title), created_at, updated_at, turns"
                    " FROM sessions WHERE owner = ? ORDER BY updated_at DESC, session_id LIMIT ?",
                    (owner, limit),
                )
                .fetchall()
            )
        return [
            SessionSummary(sid, who, title, _moment(created if created is not None else updated), _moment(updated), n)
            for sid, who, title, created, updated, n in rows
        ]

    def delete_session(self, session_id: str, owner: str) -> None:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        with self._transaction("deleting a conversation") as conn:
            self._check_owner(conn, session_id, owner)
            conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))  # messages cascade

    def truncate(self, session_id: str, owner: str, turns: int, shown: int | None = None) -> None:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        with self._transaction("undoing a turn") as conn:
            self._check_owner(conn, session_id, owner)
            if shown is not None and (stored := _stored_turns(conn, session_id)) > shown:
                raise TurnsChanged(shown, stored)
            if turns <= 0:  # an empty conversation is not worth listing
                conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))  # messages cascade
                return
            conn.execute("DELETE FROM messages WHERE session_id = ? AND seq >= ?", (session_id, 2 * turns))
            # A failed message recorded before the undone turn would otherwise come back as current.
            conn.execute(
                "UPDATE sessions SET turns = MIN(turns, ?), unanswered = NULL WHERE session_id = ?", (turns, session_id)
            )

    # -- managing conversations ---------------------------------------------------------------------------

    def describe_session(self, session_id: str, owner: str) -> SessionSummary:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        with self._errors("reading a conversation"):
            row = (
                self._conn()
                .execute(
                    "SELECT owner, COALESCE(custom_title, title), created_at, updated_at, turns, unanswered"
                    " FROM sessions WHERE session_id = ?",
                    (session_id,),
                )
                .fetchone()
            )
        if row is None or row[0] is None or row[0] != owner:
            raise SessionNotFound()
        who, title, created, updated, turns, raw = row
        return SessionSummary(
            session_id,
            who,
            title,
            _moment(created if created is not None else updated),
            _moment(updated),
            turns,
            _unanswered(raw),
        )

    def rename_session(self, session_id: str, owner: str, title: str) -> None:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        with self._transaction("renaming a conversation") as conn:
            self._check_owner(conn, session_id, owner)
            conn.execute("UPDATE sessions SET custom_title = ? WHERE session_id = ?", (title_of(title), session_id))

    def _index_words(self, conn: sqlite3.Connection, query: str) -> list[str]:
        """The words of `query` as the search index's tokenizer makes them, without duplicates, in order."""
        if not getattr(self._local, "query_table", False):
            for statement in QUERY_SCHEMA:
                conn.execute(statement)
            self._local.query_table = True
        conn.execute("INSERT INTO temp.search_query (rowid, body) VALUES (1, ?)", (query,))
        try:
            tokens = [row[0] for row in conn.execute("SELECT term FROM temp.search_query_words ORDER BY offset")]
        finally:
            conn.execute("DELETE FROM temp.search_query")
        return list(dict.fromkeys(tokens))[: search.MAX_TERMS]

    def search_sessions(self, owner: str, query: str, limit: int = 20) -> list[SearchHit]:
        if not owner:
            return []
        with self._errors("searching conversations"):
            conn = self._conn()
            words = self._index_words(conn, query)
            if not words:
                return []
            rows = conn.execute(
                # One row per session, chosen in SQLite (a bare column beside MAX() comes from the row
                # holding the maximum): the title if it matched (the highest rowid of a session), else the
                # newest message that did.
                "SELECT s.session_id, COALESCE(s.custom_title, s.title), s.created_at, s.updated_at, s.turns,"
                f" MAX(search_index.rowid) % {SLOT}, search_index.body"
                " FROM search_index"
                f" JOIN search_keys k ON k.key = search_index.rowid / {SLOT}"
                " JOIN sessions s ON s.session_id = k.session_id"
                " WHERE search_index MATCH ? AND s.owner = ?"
                " GROUP BY s.session_id ORDER BY s.updated_at DESC, s.session_id LIMIT ?",
                (search.fts_query(words), owner, limit),
            ).fetchall()
        return [
            SearchHit(
                SessionSummary(
                    sid, owner, title, _moment(created if created is not None else updated), _moment(updated), turns
                ),
                "" if seq == TITLE_SEQ else search.excerpt(words, body),
            )
            for sid, title, created, updated, turns, seq, body in rows
        ]

    def save_unanswered(self, session_id: str, owner: str, unanswered: Unanswered) -> None:
        if not valid_session_id(session_id) or not owner:
            raise SessionNotFound()
        at = _micros(unanswered.created_at)
        record = json.dumps(
            {
                "text": unanswered.text,
                "error": unanswered.error,
                "after_turns": unanswered.after_turns,
                "created_at": at,
            },
            ensure_ascii=False,
        )
        with self._transaction("keeping a failed message") as conn:
            row = conn.execute("SELECT owner FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO sessions (session_id, owner, title, created_at, updated_at, turns, unanswered)"
                    " VALUES (?, ?, ?, ?, ?, 0, ?)",
                    (session_id, owner, title_of(unanswered.text), at, at, record),
                )
                return
            if row[0] != owner:
                raise SessionNotFound()
            conn.execute(
                "UPDATE sessions SET unanswered = ?, updated_at = ? WHERE session_id = ?", (record, at, session_id)
            )

    def clear_unanswered(self, session_id: str, owner: str) -> None:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        with self._transaction("forgetting a failed message") as conn:
            self._check_owner(conn, session_id, owner)
            turns = conn.execute("SELECT turns FROM sessions WHERE session_id = ?", (session_id,)).fetchone()[0]
            if turns == 0:  # it held only that message: nothing is left worth listing
                conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            else:
                conn.execute("UPDATE sessions SET unanswered = NULL WHERE session_id = ?", (session_id,))

    def ping(self) -> None:
        with self._errors("checking the store"):
            self._conn().execute("SELECT 1 FROM sessions LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
