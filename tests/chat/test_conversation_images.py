"""Images in a conversation's life: attached, sent with their bytes, kept as references after the turn, read
back from the media store when a resumed conversation continues, and deleted with their turn or conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.chat import ChatService
from chatapp.conversations import Conversations
from chatapp.history.sqlite import SqliteStore
from chatapp.images import check_image
from chatapp.media.base import MediaNotFound
from chatapp.media.local import LocalMediaStore
from tests.chat.test_chat_service import ScriptedModel
from tests.chat.test_conversations import SETTINGS
from tests.media.images import GIF, PNG

ADA = "user:ada"


@pytest.fixture
def setup(tmp_path: Path):
    store = SqliteStore(tmp_path / "history.sqlite3")
    media = LocalMediaStore(tmp_path / "media")
    model = ScriptedModel("M")

    class Saver:
        def save(self, turn) -> bool:
            store.save_turn(turn)
            return True

    service = ChatService({"M": model}, Saver(), context_chars=10_000, load_image=lambda o, c, i: media.get(o, c, i.id))
    yield Conversations(service, store, media=media), media, model
    store.close()


def send(conversations: Conversations, session, text: str, *images: bytes):
    refs = conversations.attach(ADA, session, [check_image(data) for data in images])
    ask = conversations.check(text, SETTINGS, refs)
    assert list(conversations.reply(ADA, session, ask))[-1].saved
    return refs


def test_images_reach_the_model_and_come_back_from_the_store_after_resume(setup) -> None:
    conversations, _, model = setup
    session = conversations.start(ADA)
    refs = send(conversations, session, "", PNG)  # an image alone is a message
    assert [i.data for i in model.prompts[-1][-1].images] == [PNG]
    assert all(i.data is None for m in session.messages for i in m.images)  # memory keeps references only

    resumed = conversations.resume(ADA, session.session_id)
    assert resumed.messages[0].images == refs
    assert conversations.list(ADA)[0].title == "(image)"
    send(conversations, resumed, "and now?")
    earlier = model.prompts[-1][0]
    assert [i.data for i in earlier.images] == [PNG]  # read back from the media store for the new prompt


def test_undo_deletes_the_turns_images_and_delete_the_conversations(setup) -> None:
    conversations, media, _ = setup
    session = conversations.start(ADA)
    first = send(conversations, session, "one", PNG)
    second = send(conversations, session, "two", GIF)
    assert conversations.undo(ADA, session) == "two"
    with pytest.raises(MediaNotFound):
        media.get(ADA, session.session_id, second[0].id)
    assert media.get(ADA, session.session_id, first[0].id) == PNG
    conversations.delete(ADA, session.session_id)
    with pytest.raises(MediaNotFound):
        media.get(ADA, session.session_id, first[0].id)


def test_a_missing_image_is_a_sentence_and_nothing_is_sent(setup) -> None:
    conversations, media, model = setup
    session = conversations.start(ADA)
    refs = send(conversations, session, "look", PNG)
    media.delete(ADA, session.session_id, [refs[0].id])
    resumed = conversations.resume(ADA, session.session_id)
    sent = len(model.prompts)
    (update,) = conversations.reply(ADA, resumed, conversations.check("again", SETTINGS))
    assert update.done and "Could not read an image of this conversation" in (update.notice or "")
    assert len(model.prompts) == sent
