"""The local media store: one person's images are not reachable by another, and deletes remove them."""

from __future__ import annotations

import pytest

from chatapp.history.base import Turn
from chatapp.history.sqlite import SqliteStore
from chatapp.media.base import MediaNotFound
from chatapp.media.local import LocalMediaStore, folder_beside
from tests.media.images import GIF, PNG

A, B = "browser:" + "a" * 32, "user:bob"
CONV = "c" * 32


def test_images_live_beside_the_sqlite_file(tmp_path) -> None:
    assert folder_beside(tmp_path / "chat-history.sqlite3") == tmp_path / "chat-history.media"


def test_another_owner_cannot_read_or_delete_an_image_even_knowing_its_ids(tmp_path) -> None:
    media = LocalMediaStore(tmp_path / "media")
    ref = media.put(A, CONV, PNG, "image/png")
    with pytest.raises(MediaNotFound):
        media.get(B, CONV, ref.id)
    media.delete(B, CONV, [ref.id])
    media.delete_conversation(B, CONV)
    assert media.get(A, CONV, ref.id) == PNG  # the victim's image, untouched


@pytest.mark.parametrize("image_id", ["../" * 4 + "etc/passwd", "A" * 32, "", "a" * 31, "a" * 32 + "/x"])
def test_ids_that_are_not_ours_name_nothing(tmp_path, image_id: str) -> None:
    media = LocalMediaStore(tmp_path / "media")
    with pytest.raises(MediaNotFound):
        media.get(A, CONV, image_id)
    with pytest.raises(MediaNotFound):
        media.get(A, "../" + "c" * 29, "a" * 32)


def test_deleting_a_conversation_deletes_its_images_only(tmp_path) -> None:
    media = LocalMediaStore(tmp_path / "media")
    gone = [media.put(A, CONV, PNG, "image/png"), media.put(A, CONV, GIF, "image/gif")]
    kept = media.put(A, "d" * 32, GIF, "image/gif")
    media.delete_conversation(A, CONV)
    for ref in gone:
        with pytest.raises(MediaNotFound):
            media.get(A, CONV, ref.id)
    assert media.get(A, "d" * 32, kept.id) == GIF
    media.delete(A, "d" * 32, [kept.id])
    with pytest.raises(MediaNotFound):
        media.get(A, "d" * 32, kept.id)


def test_sqlite_keeps_image_references_and_opens_a_history_from_before_images(tmp_path) -> None:
    import sqlite3
    from datetime import UTC, datetime

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the schema before images
        conn.executescript(
            "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, owner TEXT, title TEXT NOT NULL DEFAULT '',"
            " created_at INTEGER, updated_at INTEGER NOT NULL, turns INTEGER NOT NULL);"
            "CREATE TABLE messages (session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,"
            " seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, model TEXT,"
            " created_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;"
            "INSERT INTO sessions VALUES ('old', 'alice', 'hi', 1, 1, 1);"
            "INSERT INTO messages VALUES ('old', 0, 'user', 'hi', NULL, 1), ('old', 1, 'assistant', 'hello', 'm', 1);"
        )
    store = SqliteStore(path)
    try:
        assert [m.images for m in store.load_messages("old", "alice")] == [(), ()]
        media = LocalMediaStore(tmp_path / "media")
        refs = (media.put("alice", CONV, PNG, "image/png"), media.put("alice", CONV, GIF, "image/gif"))
        at = datetime.now(UTC)
        store.save_turn(Turn(CONV, "alice", 0, "", "a dot", "m", at, user_images=refs))
        loaded = store.load_messages(CONV, "alice")
        assert loaded[0].images == refs and loaded[1].images == ()
        assert store.list_sessions("alice")[0].title in ("(image)", "hi")
        assert next(s for s in store.list_sessions("alice") if s.session_id == CONV).title == "(image)"
    finally:
        store.close()
