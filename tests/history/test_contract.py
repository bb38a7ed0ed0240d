"""The store contract: every test runs on SQLite and on the Firestore emulator and must pass on both."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from chatapp.history.base import MAX_MESSAGE_BYTES, TITLE_CHARS, SessionNotFound, StoreError, Turn, TurnsChanged, Usage
from tests.history.conftest import T0, add_placeholder, make_turn

TEXTS = [
    "plain ascii",
    "accents: héllo wörld, ß, œ, e\u0301 (combining)",
    "emoji: 👩\u200d👩\u200d👧 🚀 🇯🇵 👍🏽",
    "RTL: مرحبا بالعالم — שלום עולם \u202eevil\u202c",
    "controls without NUL: \t tab \r\n crlf \x01\x07\x1b[31m \x1f \x7f \u2028 \u2029",
    "astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠜎 \U0010fffd",
    "zero-width: a\u200bb\u200dc\ufeff",
    "quotes ' \" ` ; DROP TABLE sessions; -- %s {0} \\N",
    "",
    "   leading and trailing spaces   ",
]


def test_roundtrip_keeps_text_roles_models_and_times_exactly(store):
    for i in range(0, len(TEXTS), 2):
        store.save_turn(make_turn(i // 2, user=TEXTS[i], assistant=TEXTS[i + 1]))

    messages = store.load_messages("s-1", "alice")

    assert [m.content for m in messages] == TEXTS
    assert [m.seq for m in messages] == list(range(len(TEXTS)))
    assert [m.role for m in messages] == ["user", "assistant"] * (len(TEXTS) // 2)
    assert [m.model for m in messages] == [None, "test-model"] * (len(TEXTS) // 2)
    assert messages[0].created_at == T0  # microseconds and timezone survive
    assert messages[-1].created_at == T0 + timedelta(seconds=len(TEXTS) // 2 - 1)


def test_messages_come_back_in_seq_order_whatever_the_save_order(store):
    for index in (2, 0, 3, 1):
        store.save_turn(make_turn(index))

    messages = store.load_messages("s-1", "alice")

    assert [m.seq for m in messages] == list(range(8))
    assert [m.content for m in messages[:4]] == ["question 0", "answer 0", "question 1", "answer 1"]


def test_another_owner_can_neither_load_nor_delete_nor_list(store):
    store.save_turn(make_turn(0))

    with pytest.raises(SessionNotFound):
        store.load_messages("s-1", "bob")
    with pytest.raises(SessionNotFound):
        store.delete_session("s-1", "bob")
    assert store.list_sessions("bob") == []
    assert len(store.load_messages("s-1", "alice")) == 2  # untouched


def test_unknown_session_is_not_found(store):
    for session_id in ("nope", "a/b", "..", "__reserved__"):
        with pytest.raises(SessionNotFound):
            store.load_messages(session_id, "alice")
        with pytest.raises(SessionNotFound):
            store.delete_session(session_id, "alice")


def test_list_is_newest_first_with_limit_and_summaries(store):
    for n in range(5):
        store.save_turn(make_turn(0, session_id=f"s-{n}", user=f"  topic\n{n}  ", at=T0 + timedelta(minutes=n)))
    store.save_turn(make_turn(1, session_id="s-1", at=T0 + timedelta(hours=1)))  # s-1 becomes the newest

    listed = store.list_sessions("alice", limit=3)

    assert [s.session_id for s in listed] == ["s-1", "s-4", "s-3"]
    newest = listed[0]
    assert (newest.owner, newest.title, newest.turns) == ("alice", "topic 1", 2)
    assert newest.created_at == T0 + timedelta(minutes=1)
    assert newest.updated_at == T0 + timedelta(hours=1)
    assert len(store.list_sessions("alice")) == 5


def test_title_is_first_line_collapsed_and_capped(store):
    store.save_turn(make_turn(0, user="  a\tlong\n\nquestion " + "x" * 200))

    (summary,) = store.list_sessions("alice")

    assert summary.title.startswith("a long question xxx")
    assert len(summary.title) == TITLE_CHARS


def test_placeholder_initialize_doc_is_never_listed_or_loadable(store):
    add_placeholder(store)
    store.save_turn(make_turn(0))

    assert [s.session_id for s in store.list_sessions("alice")] == ["s-1"]
    assert store.list_sessions("") == []
    for owner in ("", "alice", "None"):
        with pytest.raises(SessionNotFound):
            store.load_messages("initialize", owner)
        with pytest.raises(SessionNotFound):
            store.delete_session("initialize", owner)


def test_saving_the_same_turn_again_changes_nothing(store):
    turns = [make_turn(0), make_turn(1)]
    for turn in turns:
        store.save_turn(turn)
    before = (store.load_messages("s-1", "alice"), store.list_sessions("alice"))

    for turn in turns:  # a retry after a lost reply
        store.save_turn(turn)
    store.save_turn(turns[1])

    assert (store.load_messages("s-1", "alice"), store.list_sessions("alice")) == before
    assert len(before[0]) == 4 and before[1][0].turns == 2


COST = Usage(120, 30)
DAY = timedelta(days=1)


def costing(turn: Turn) -> Turn:
    return dataclasses.replace(turn, usage=COST)


def test_a_turn_never_overwrites_another_at_its_place(store):
    # A copy of the conversation that missed a turn saved elsewhere (another device on another replica) gives
    # its next turn the place that turn took: it goes after the last one, and both stay.
    store.save_turn(costing(make_turn(0)))
    store.save_turn(costing(make_turn(1, user="from the phone", assistant="answer on the phone")))
    store.save_turn(costing(make_turn(1, user="from the laptop", assistant="answer on the laptop", at=T0 + DAY / 2)))

    messages = store.load_messages("s-1", "alice")
    assert [m.content for m in messages] == [
        "question 0", "answer 0", "from the phone", "answer on the phone", "from the laptop", "answer on the laptop",
    ]  # fmt: skip
    assert [m.seq for m in messages] == list(range(6))
    assert store.list_sessions("alice")[0].turns == 3
    assert store.tokens_used("alice", T0.date()) == 3 * COST.total


def test_a_turn_saved_again_is_stored_and_counted_once(store):
    turn = costing(make_turn(0))
    store.save_turn(turn)
    store.save_turn(turn)  # its commit's answer was lost: saved again by the retry queue

    assert len(store.load_messages("s-1", "alice")) == 2
    assert store.tokens_used("alice", T0.date()) == COST.total


def test_retry_replaces_the_turn_at_its_place(store):
    store.save_turn(make_turn(0))
    store.save_turn(make_turn(1))
    store.save_turn(dataclasses.replace(make_turn(1, assistant="a better answer"), replaces=True))

    messages = store.load_messages("s-1", "alice")
    assert [m.content for m in messages[2:]] == ["question 1", "a better answer"]
    assert len(messages) == 4


def test_retry_from_a_copy_that_missed_turns_replaces_none_of_them(store):
    # The copy retries its last turn, 0, but the phone stored turn 1 meanwhile: the new reply goes after it.
    store.save_turn(make_turn(0))
    store.save_turn(make_turn(1, user="from the phone"))
    store.save_turn(dataclasses.replace(make_turn(0, assistant="the retried answer", at=T0 + DAY / 2), replaces=True))

    assert [m.content for m in store.load_messages("s-1", "alice")] == [
        "question 0", "answer 0", "from the phone", "answer 1", "question 0", "the retried answer",
    ]  # fmt: skip


def test_undo_from_a_copy_that_missed_turns_deletes_nothing(store):
    for index in range(3):
        store.save_turn(make_turn(index))
    before = store.load_messages("s-1", "alice")

    with pytest.raises(TurnsChanged):
        store.truncate("s-1", "alice", 1, shown=2)  # its copy shows 2 turns, 3 are stored
    with pytest.raises(TurnsChanged):
        store.truncate("s-1", "alice", 0, shown=1)  # nor the whole conversation, as undoing its only turn would
    assert store.load_messages("s-1", "alice") == before

    store.truncate("s-1", "alice", 2, shown=3)
    assert len(store.load_messages("s-1", "alice")) == 4


def test_delete_removes_the_session_and_only_it(store):
    store.save_turn(make_turn(0, session_id="gone"))
    store.save_turn(make_turn(1, session_id="gone"))
    store.save_turn(make_turn(0, session_id="kept"))

    store.delete_session("gone", "alice")

    with pytest.raises(SessionNotFound):
        store.load_messages("gone", "alice")
    with pytest.raises(SessionNotFound):
        store.delete_session("gone", "alice")
    assert [s.session_id for s in store.list_sessions("alice")] == ["kept"]
    assert len(store.load_messages("kept", "alice")) == 2


def test_a_deleted_session_id_starts_fresh_when_reused(store):
    store.save_turn(make_turn(0))
    store.save_turn(make_turn(1))
    store.delete_session("s-1", "alice")

    store.save_turn(make_turn(0, user="again"))

    assert [m.content for m in store.load_messages("s-1", "alice")] == ["again", "answer 0"]


def test_turns_no_store_can_keep_are_refused_before_writing(store):
    too_big = "é" * (MAX_MESSAGE_BYTES // 2 + 1)  # 2 bytes each in UTF-8
    bad = [
        make_turn(0, assistant=too_big),
        make_turn(0, user="\ud800 lone surrogate"),
        make_turn(0, session_id="a/b"),
        make_turn(0, owner=""),
    ]
    for turn in bad:
        with pytest.raises(StoreError) as caught:
            store.save_turn(turn)
        assert caught.value.transient is False

    assert store.list_sessions("alice") == []
    with pytest.raises(SessionNotFound):
        store.load_messages("s-1", "alice")


def test_a_message_just_under_the_cap_is_kept(store):
    big = "y" * MAX_MESSAGE_BYTES

    store.save_turn(make_turn(0, assistant=big))

    assert store.load_messages("s-1", "alice")[1].content == big


def test_ping_answers(store):
    store.ping()


def test_truncate_undoes_the_newest_turns_for_the_owner_only(store):
    for index in range(3):
        store.save_turn(make_turn(index))
    with pytest.raises(SessionNotFound):
        store.truncate("s-1", "bob", 1)
    with pytest.raises(SessionNotFound):
        store.truncate("s-1", "bob", 0)  # would delete the whole conversation
    assert len(store.load_messages("s-1", "alice")) == 6  # Alice's conversation is untouched
    assert store.list_sessions("alice")[0].turns == 3

    store.truncate("s-1", "alice", 1)

    assert [m.content for m in store.load_messages("s-1", "alice")] == ["question 0", "answer 0"]
    assert store.list_sessions("alice")[0].turns == 1
    store.save_turn(make_turn(1))  # the next turn takes the undone index
    assert len(store.load_messages("s-1", "alice")) == 4


def test_truncating_to_nothing_removes_the_conversation(store):
    store.save_turn(make_turn(0))
    store.truncate("s-1", "alice", 0)
    assert store.list_sessions("alice") == []
    with pytest.raises(SessionNotFound):
        store.load_messages("s-1", "alice")
