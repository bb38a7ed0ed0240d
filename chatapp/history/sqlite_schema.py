"""The SQLite history's schema: its tables, the columns added since the first release, and the full-text
search index with the triggers that keep it in step (created or brought up to date when a file is opened)."""

from __future__ import annotations

import re
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    owner      TEXT,               -- NULL like a Firestore session doc written without owner: never listed
    title      TEXT NOT NULL DEFAULT '',
    created_at INTEGER,            -- microseconds since the epoch, UTC (exact round trip, sorts as a number)
    updated_at INTEGER NOT NULL,
    turns      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_owner_updated ON sessions (owner, updated_at);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    model      TEXT,
    created_at INTEGER NOT NULL,
    tokens_in  INTEGER,            -- replies only: what the reply cost (see history.base.Usage)
    tokens_out INTEGER,
    tokens_estimated INTEGER,
    images     TEXT,               -- JSON list of image references (id, mime_type, size) or NULL
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily_usage (
    owner  TEXT NOT NULL,
    day    TEXT NOT NULL,          -- UTC, YYYY-MM-DD
    tokens INTEGER NOT NULL,
    PRIMARY KEY (owner, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_holds (   -- what requests in flight reserved against the daily limit
    owner   TEXT NOT NULL,
    day     TEXT NOT NULL,          -- UTC, YYYY-MM-DD
    hold_id TEXT NOT NULL,
    tokens  INTEGER NOT NULL,
    until   REAL NOT NULL,          -- seconds since the epoch: the hold of a process that died ends by itself
    PRIMARY KEY (owner, day, hold_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_bindings (  -- a Gradio session hash -> the first caller that used it
    key        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    created_at REAL NOT NULL        -- seconds since the epoch; bindings older than BINDING_DAYS are dropped
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sign_in_failures (  -- failed sign-ins per key (user name, client address)
    key        TEXT PRIMARY KEY,
    times      TEXT NOT NULL,       -- JSON list of the newest failures, seconds since the epoch
    expires_at REAL                 -- the newest failure + the window: the row counts for nothing after it
) WITHOUT ROWID;
"""

# Columns added after the first release (table -> column definitions): a file created by an older version
# gets them on open. tokens_*: what a reply cost (history.base.Usage); custom_title: a title the owner chose
# (rename), NULL = the first message's title; unanswered: JSON of history.base.Unanswered, a message whose
# reply failed; images: JSON of the user message's image references (history.base.images_json).
ADDED_COLUMNS = {
    "messages": ("tokens_in INTEGER", "tokens_out INTEGER", "tokens_estimated INTEGER", "images TEXT"),
    "sessions": ("custom_title TEXT", "unanswered TEXT"),
    "sign_in_failures": ("expires_at REAL",),
}
SLOT = 4_294_967_296  # search rowid = session key * SLOT + seq; the title takes the slot's last number
TITLE_SEQ = SLOT - 1

TOKENIZER = "unicode61 remove_diacritics 2"
# Full-text search (FTS5), kept in step with the tables by triggers, so every write path (a turn, a retried
# turn rewriting its rows, undo, delete, rename) updates it in the same transaction. `messages` has no rowid
# to point at, so each session gets a small integer key and a search row's rowid is key * 2^32 + seq: a
# message's row is found by rowid, and a whole session's rows are one rowid range.
# (Statements one by one: executescript would commit the transaction they run in. No OR IGNORE inside the
# triggers: the conflict clause of the statement that fires a trigger, e.g. a turn's INSERT OR REPLACE,
# overrides it and would replace a session's key.)
SEARCH_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS search_keys (key INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE);
CREATE VIRTUAL TABLE IF NOT EXISTS search_index USING fts5(body, tokenize = '{TOKENIZER}');
CREATE TRIGGER IF NOT EXISTS search_message_saved AFTER INSERT ON messages BEGIN
    INSERT INTO search_keys (session_id) SELECT new.session_id
     WHERE NOT EXISTS (SELECT 1 FROM search_keys WHERE session_id = new.session_id);
    DELETE FROM search_index
     WHERE rowid = (SELECT key FROM search_keys WHERE session_id = new.session_id) * {SLOT} + new.seq;
    INSERT INTO search_index (rowid, body)
    VALUES ((SELECT key FROM search_keys WHERE session_id = new.session_id) * {SLOT} + new.seq, new.content);
END;
CREATE TRIGGER IF NOT EXISTS search_message_removed AFTER DELETE ON messages BEGIN
    DELETE FROM search_index
     WHERE rowid = (SELECT key FROM search_keys WHERE session_id = old.session_id) * {SLOT} + old.seq;
END;
CREATE TRIGGER IF NOT EXISTS search_title_added AFTER INSERT ON sessions BEGIN
    INSERT INTO search_keys (session_id) SELECT new.session_id
     WHERE NOT EXISTS (SELECT 1 FROM search_keys WHERE session_id = new.session_id);
    INSERT INTO search_index (rowid, body)
    VALUES ((SELECT key FROM search_keys WHERE session_id = new.session_id) * {SLOT} + {TITLE_SEQ},
            COALESCE(new.custom_title, new.title));
END;
CREATE TRIGGER IF NOT EXISTS search_title_changed AFTER UPDATE OF title, custom_title ON sessions BEGIN
    INSERT INTO search_keys (session_id) SELECT new.session_id
     WHERE NOT EXISTS (SELECT 1 FROM search_keys WHERE session_id = new.session_id);
    DELETE FROM search_index
     WHERE rowid = (SELECT key FROM search_keys WHERE session_id = new.session_id) * {SLOT} + {TITLE_SEQ};
    INSERT INTO search_index (rowid, body)
    VALUES ((SELECT key FROM search_keys WHERE session_id = new.session_id) * {SLOT} + {TITLE_SEQ},
            COALESCE(new.custom_title, new.title));
END;
CREATE TRIGGER IF NOT EXISTS search_session_removed AFTER DELETE ON sessions BEGIN
    DELETE FROM search_index
     WHERE rowid >= (SELECT key FROM search_keys WHERE session_id = old.session_id) * {SLOT}
       AND rowid < ((SELECT key FROM search_keys WHERE session_id = old.session_id) + 1) * {SLOT};
    DELETE FROM search_keys WHERE session_id = old.session_id;
END;
"""
# A search's words as the index itself splits and folds them (punctuation, `_` included, separates words): the
# prefix rule must be judged on what the index will match, not on the text typed (`_w_` is the word `w`).
# Per connection, in its temp database (never written to the history file).
QUERY_SCHEMA = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_query USING fts5(body, tokenize = '{TOKENIZER}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_query_words USING fts5vocab(temp, search_query, instance)",
)

# A file written before search existed: index what it already holds (once, when the index is created).
SEARCH_BACKFILL = f"""
INSERT OR IGNORE INTO search_keys (session_id) SELECT session_id FROM sessions;
INSERT INTO search_index (rowid, body)
    SELECT k.key * {SLOT} + m.seq, m.content FROM messages m JOIN search_keys k USING (session_id);
INSERT INTO search_index (rowid, body)
    SELECT k.key * {SLOT} + {TITLE_SEQ}, COALESCE(s.custom_title, s.title)
      FROM sessions s JOIN search_keys k USING (session_id);
"""


def add_search(conn: sqlite3.Connection) -> None:
    """Create the search index and its triggers, and index what an older file holds, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        indexed = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'search_index'").fetchone()
        for statement in _statements(SEARCH_SCHEMA):
            conn.execute(statement)
        if not indexed:
            for statement in _statements(SEARCH_BACKFILL):
                conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """The statements of a script whose statements each start on a new line with CREATE or INSERT."""
    return [part.strip() for part in re.split(r";\n(?=CREATE |INSERT )", script.strip()) if part.strip()]
