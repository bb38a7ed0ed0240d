"""Conversations at its edges, in-process over real SQLite and a real local media store: what a person reads when
the store fails, what discard and attach leave behind, and the shapes the API returns."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chatapp.chat import ChatService, ChatSession
from chatapp.conversation import ImageRef, Message
from chatapp.conversations import Ask, Controls, Conversations, Found, NotFound, Summary, Unavailable
from chatapp.history.base import StoreError
from chatapp.history.sqlite import SqliteStore
from chatapp.images import check_image
from chatapp.inputs import InputError
from chatapp.media.base import MediaError, MediaNotFound
from chatapp.media.local import LocalMediaStore
from chatapp.models.base import GenerationParams, ModelOptions, options_of
from chatapp.usage import DailyUsage
from tests.chat.test_chat_service import ScriptedModel
from tests.chat.test_conversations import SETTINGS
from tests.media.images import GIF, PNG

ADA = "user:ada"
DOWN = "the disk is full"


class Saver:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def save(self, turn) -> bool:
        self.store.save_turn(turn)
        return True


class FailingStore:
    """The real store, but every call raises StoreError while `down`."""

    def __init__(self, store: SqliteStore) -> None:
        self.store, self.down = store, False

    def __getattr__(self, name: str):
        method = getattr(self.store, name)

        def call(*args, **kwargs):
            if self.down:
                raise StoreError(DOWN)
            return method(*args, **kwargs)

        return call


class FailingMedia(LocalMediaStore):
    """The real local media store, but deletes fail while `down`, and writes once `puts_left` (if set) is used up."""

    down = False
    puts_left: int | None = None

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.deletes: list[str] = []  # the owner of each delete call

    def put(self, *args, **kwargs):
        if self.puts_left == 0:
            raise MediaError("the bucket refused the write")
        if self.puts_left is not None:
            self.puts_left -= 1
        return super().put(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self.deletes.append(args[0])
        if self.down:
            raise MediaError("the bucket is unreachable")
        return super().delete(*args, **kwargs)

    def delete_conversation(self, *args, **kwargs):
        if self.down:
            raise MediaError("the bucket is unreachable")
        return super().delete_conversation(*args, **kwargs)


@pytest.fixture
def parts(tmp_path: Path):
    sqlite = SqliteStore(tmp_path / "history.sqlite3")
    store = FailingStore(sqlite)
    media = FailingMedia(tmp_path / "media")
    service = ChatService({"M": ScriptedModel("M")}, Saver(sqlite), context_chars=10_000)
    yield Conversations(service, store, media=media), store, media
    sqlite.close()


def talk(conversations: Conversations, session: ChatSession, text: str) -> None:
    assert list(conversations.reply(ADA, session, conversations.check(text, SETTINGS)))[-1].saved


def test_every_store_failure_is_a_sentence_saying_what_could_not_be_done(parts):
    conversations, store, _ = parts
    session = conversations.start(ADA)
    talk(conversations, session, "hello")
    cid = session.session_id
    store.down = True
    calls = [
        (lambda: conversations.list(ADA), "Could not list your conversations"),
        (lambda: conversations.resume(ADA, cid), "Could not load the conversation"),
        (lambda: conversations.delete(ADA, cid), "Could not delete the conversation"),
        (lambda: conversations.discard(ADA, session), "Could not delete the conversation"),
        (lambda: conversations.undo(ADA, session), "Could not undo the last turn"),
        (lambda: conversations.rename(ADA, cid, "new"), "Could not rename the conversation"),
        (lambda: conversations.search(ADA, "hello"), "Could not search your conversations"),
        (lambda: conversations.export(ADA, cid, "json"), "Could not export the conversation"),
        (lambda: conversations.forget_unanswered(ADA, session), "Could not take the message back"),
    ]
    for call, what in calls:
        with pytest.raises(Unavailable) as failed:
            call()
        assert str(failed.value) == f"{what}: {DOWN}"
    assert conversations.remember_unanswered(ADA, session, "why?", "down") is False
    assert conversations.unanswered(ADA, session) is None
    assert [m.content for m in session.messages] == ["hello", "Hello!"]  # a failed undo/discard changed nothing
    store.down = False
    assert [c.id for c in conversations.list(ADA)] == [cid]


def test_not_found_and_bad_ids_say_so():
    assert str(NotFound()) == "No such conversation (it may have been deleted)."


@pytest.mark.parametrize("bad", [None, 7, "../etc", "A" * 32, "0" * 31])
def test_an_invalid_id_is_refused_before_the_store_sees_it(parts, bad):
    conversations, store, _ = parts
    store.down = True  # had the store been asked, this would be Unavailable
    for call in (conversations.resume, conversations.delete, conversations.export, conversations.rename):
        args = (ADA, bad) + (
            ("json",) if call == conversations.export else ("t",) if call == conversations.rename else ()
        )
        with pytest.raises(InputError) as refused:
            call(*args)
        assert str(refused.value) == "That is not a valid conversation id."


def test_discard_deletes_the_stored_conversation_and_its_images(parts):
    conversations, _, media = parts
    session = conversations.start(ADA)
    refs = conversations.attach(ADA, session, [check_image(PNG)])
    ask = conversations.check("look", SETTINGS, refs)
    assert list(conversations.reply(ADA, session, ask))[-1].saved
    other = conversations.start(ADA)
    talk(conversations, other, "keep me")

    with pytest.raises(NotFound):
        conversations.discard("user:bob", session)
    conversations.discard(ADA, session)
    assert [c.id for c in conversations.list(ADA)] == [other.session_id]
    assert session.messages == []
    with pytest.raises(MediaNotFound):
        media.get(ADA, session.session_id, refs[0].id)
    conversations.discard(ADA, conversations.start(ADA))  # never stored: nothing to do, no error


def test_a_media_failure_on_delete_is_logged_not_raised(parts, caplog):
    conversations, _, media = parts
    session = conversations.start(ADA)
    conversations.attach(ADA, session, [check_image(PNG)])
    talk(conversations, session, "hi")
    media.down = True
    conversations.delete(ADA, session.session_id)
    assert "images of a deleted conversation left in the media store: the bucket is unreachable" in caplog.messages
    assert conversations.list(ADA) == []


def test_a_failed_image_write_removes_the_images_already_written(parts):
    conversations, _, media = parts
    session = conversations.start(ADA)
    media.puts_left = 1  # the first image is written, the second refused
    with pytest.raises(Unavailable) as failed:
        conversations.attach(ADA, session, [check_image(PNG), check_image(GIF)])
    assert str(failed.value) == "Could not store the image: the bucket refused the write"
    assert [p for p in media.root.rglob("*") if p.is_file()] == []  # the first image was deleted again


def test_attached_images_carry_their_bytes_for_the_model_and_are_refused_without_a_media_store(tmp_path, parts):
    conversations, _, _ = parts
    session = conversations.start(ADA)
    (ref,) = conversations.attach(ADA, session, [check_image(PNG)])
    assert ref.data == PNG and ref.mime_type == "image/png"
    assert conversations.attach(ADA, session, []) == ()
    store = SqliteStore(tmp_path / "text-only.sqlite3")
    text_only = Conversations(ChatService({"M": ScriptedModel("M")}, Saver(store), context_chars=100), store)
    with pytest.raises(InputError) as refused:
        text_only.attach(ADA, session, [check_image(PNG)])
    assert str(refused.value) == "This chat takes text only."
    with pytest.raises(NotFound):
        text_only.image(ADA, session.session_id, ref.id)
    assert text_only.usage_line(ADA) == ""
    assert text_only.usage_report(ADA) == {"tokens_today": None, "limit": None, "resets_at": None}
    store.close()


def test_summary_of_a_conversation_just_stored():
    session = ChatSession(owner=ADA)
    assert (Conversations.summary_of(session).id, Conversations.summary_of(session).title) == (session.session_id, "")
    image = ImageRef("i-1", "image/png", 3)
    session.messages += [Message("user", "", images=(image,)), Message("assistant", "a picture")]
    session.messages += [Message("user", "second"), Message("assistant", "ok")]
    before = datetime.now(UTC)
    summary = Conversations.summary_of(session)
    assert (summary.id, summary.title, summary.turns) == (session.session_id, "(image)", session.turns)
    assert before <= summary.updated_at <= datetime.now(UTC) and summary.updated_at.tzinfo is UTC
    session.messages[0] = Message("user", "  Trip\nplans  ")
    assert Conversations.summary_of(session).title == "Trip plans"


def test_the_api_shapes_of_a_list_entry_and_a_search_hit():
    at = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    summary = Summary("c" * 32, "Trip", at, 3)
    assert summary.as_dict() == {"id": "c" * 32, "title": "Trip", "updated_at": at.isoformat(), "turns": 3}
    assert Found(summary, "a line").as_dict() == summary.as_dict() | {"excerpt": "a line"}


class ParamsModel(ScriptedModel):
    """ScriptedModel that also records the generation parameters and system prompt each reply was asked with."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.params: list[GenerationParams] = []

    def stream(self, messages, params, stats):
        self.params.append(params)
        return super().stream(messages, params, stats)


def test_what_a_person_sends_reaches_the_model_as_checked(tmp_path):
    store = SqliteStore(tmp_path / "h.sqlite3")
    model = ParamsModel("M")
    conversations = Conversations(ChatService({"M": model}, Saver(store), context_chars=10_000), store)
    ask = conversations.check("  hi  ", Controls("M", 0.3, 0.5, 77, "  be brief  "))
    assert ask == Ask(ask.text, "M", GenerationParams(0.3, 0.5, 77), ask.system_prompt)
    assert ask.system_prompt == "be brief"
    session = conversations.start(ADA)
    list(conversations.reply(ADA, session, ask))
    assert model.params == [GenerationParams(0.3, 0.5, 77)]
    assert model.prompts[-1][0] == Message("system", "be brief")
    store.close()


class ThinkingModel(ScriptedModel):
    """A scripted model with thinking levels of its own, as Gemini and vLLM's Gemma offer them."""

    options = ModelOptions(temperature=1.0, thinking_levels=("low", "high"), thinking="low")


def test_settings_are_checked_against_the_chosen_model(tmp_path):
    store = SqliteStore(tmp_path / "h.sqlite3")
    models = {"M": ScriptedModel("M"), "T": ThinkingModel("T")}
    conversations = Conversations(ChatService(models, Saver(store), context_chars=10_000), store)
    assert conversations.check("hi", Controls("T", 0.7, 0.95, 64, thinking="high")).params.thinking == "high"
    refusals = {
        Controls("X", 0.7, 0.95, 64): 'Unknown model "X". Choose one of: "M", "T".',
        Controls("M", 0.7, 0.95, 64, thinking="high"): (
            'Thinking must be one of: none (this model has no thinking levels); got "high".'
        ),
        Controls("T", 0.7, 0.95, 64, thinking="medium"): 'Thinking must be one of: low, high; got "medium".',
    }
    for controls, sentence in refusals.items():
        with pytest.raises(InputError) as refused:
            conversations.check("hi", controls)
        assert str(refused.value) == sentence
    assert conversations.options("T") == ThinkingModel.options
    for label in ("X", 5, ["T"]):  # not in the menu (nor text): the generic options
        assert conversations.options(label) == options_of(None)
    store.close()


def test_retry_takes_back_the_last_turn_in_memory_only(parts):
    conversations, _, _ = parts
    session = conversations.start(ADA)
    assert conversations.retry(ADA, session) is None
    talk(conversations, session, "one")
    talk(conversations, session, "two")
    with pytest.raises(NotFound):
        conversations.retry("user:bob", session)
    assert conversations.retry(ADA, session) == "two"
    assert [m.content for m in session.messages] == ["one", "Hello!"]
    assert conversations.resume(ADA, session.session_id).turns == 2  # the store keeps it until the new reply


def test_reopen_gives_the_caller_a_new_conversation_when_the_old_is_gone(parts):
    conversations, _, _ = parts
    for remembered in (None, "not-an-id", "f" * 32):
        reopened = conversations.reopen(ADA, remembered)
        assert reopened.owner == ADA and reopened.turns == 0


def test_the_list_is_cut_at_its_limit_and_carries_each_entrys_time(tmp_path):
    store = SqliteStore(tmp_path / "h.sqlite3")
    conversations = Conversations(ChatService({"M": ScriptedModel("M")}, Saver(store), context_chars=100), store, 2)
    for text in ("a", "b", "c"):
        talk(conversations, conversations.start(ADA), text)
    listed = conversations.list(ADA)
    assert [c.title for c in listed] == ["c", "b"]
    assert all(isinstance(c.updated_at, datetime) for c in listed)
    store.close()


def test_store_and_media_failures_are_logged_for_the_operator(parts, caplog):
    conversations, store, media = parts
    session = conversations.start(ADA)
    refs = conversations.attach(ADA, session, [check_image(PNG)])
    ask = conversations.check("look", SETTINGS, refs)
    list(conversations.reply(ADA, session, ask))
    with pytest.raises(NotFound):
        conversations.undo("user:bob", session)
    assert "refused: a request used a conversation that is not the caller's" in caplog.messages
    media.down = True
    assert conversations.undo(ADA, session) == "look"
    assert "images left in the media store: the bucket is unreachable" in caplog.messages
    store.down = True
    conversations.remember_unanswered(ADA, session, "why?", "down")
    assert f"a failed message was not kept for later: {DOWN}" in caplog.messages
    conversations.unanswered(ADA, session)
    assert f"could not read a failed message back: {DOWN}" in caplog.messages


def test_forget_images_touches_only_the_callers_own(parts):
    conversations, _, media = parts
    session = conversations.start(ADA)
    refs = conversations.attach(ADA, session, [check_image(PNG)])
    conversations.forget_images("user:bob", session, refs)
    assert media.deletes == []  # not even asked: Bob's name on Ada's conversation is refused before the store
    conversations.forget_images(ADA, session, None)
    conversations.forget_images(ADA, session, ())
    assert media.get(ADA, session.session_id, refs[0].id) == PNG
    conversations.forget_images(ADA, session, refs)
    with pytest.raises(MediaNotFound):
        media.get(ADA, session.session_id, refs[0].id)


def test_a_json_export_is_json_stamped_in_utc(parts):
    conversations, _, _ = parts
    session = conversations.start(ADA)
    talk(conversations, session, "hello")
    exported = conversations.export(ADA, session.session_id, "json")
    assert exported.mime_type == "application/json"
    assert json.loads(exported.text)["exported_at"].endswith("+00:00")


def test_usage_for_the_page_and_the_api_comes_from_the_daily_count(tmp_path):
    now = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    usage = DailyUsage(lambda owner, day: {ADA: 1234}.get(owner, 0), 5000, now=lambda: now)
    store = SqliteStore(tmp_path / "h.sqlite3")
    service = ChatService({"M": ScriptedModel("M")}, Saver(store), context_chars=100, usage=usage)
    conversations = Conversations(service, store)
    assert conversations.usage_line(ADA) == usage.summary(ADA) != ""
    assert conversations.usage_report(ADA) == usage.report(ADA)
    assert conversations.usage_report(ADA)["tokens_today"] == 1234
    store.close()


def test_an_image_is_read_back_for_its_owner_only(parts):
    conversations, _, _ = parts
    session = conversations.start(ADA)
    (ref,) = conversations.attach(ADA, session, [check_image(PNG)])
    assert conversations.image(ADA, session.session_id, ref.id) == PNG
    with pytest.raises(MediaNotFound):
        conversations.image("user:bob", session.session_id, ref.id)


def test_check_message_applies_the_message_rule():
    assert Conversations.check_message("  hi  ") == "  hi  "  # sent as typed
    with pytest.raises(InputError, match=r"^The message is empty"):
        Conversations.check_message("   ")


def test_an_empty_title_is_refused_with_a_sentence(parts):
    conversations, _, _ = parts
    session = conversations.start(ADA)
    talk(conversations, session, "hello")
    with pytest.raises(InputError) as refused:
        conversations.rename(ADA, session.session_id, "  ")
    assert str(refused.value) == "The title is empty. Type a name for the conversation."


@pytest.fixture
def far_from_utc(monkeypatch):
    """The process's local time 5 hours from UTC, so a naive local `now()` shows as the wrong moment."""
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_failed_message_is_stamped_in_utc(parts, far_from_utc):
    conversations, _, _ = parts
    session = conversations.start(ADA)
    talk(conversations, session, "hello")
    assert conversations.remember_unanswered(ADA, session, "why?", "down")
    kept = conversations.unanswered(ADA, session)
    assert abs((kept.created_at - datetime.now(UTC)).total_seconds()) < 60
