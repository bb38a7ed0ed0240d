"""Firestore-only promises, measured on the emulator: the send path's RPCs, big conversations, a dead store."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc

from chatapp.history import firestore as firestore_module
from chatapp.history.base import SessionNotFound, StoreError
from chatapp.history.firestore import DELETE_BATCH, FirestoreStore
from harness.firestore_emulator import PROJECT
from harness.rpc_counter import READS, RpcCounter
from harness.support import free_port
from tests.history.conftest import make_turn

pytestmark = pytest.mark.integration


def test_one_turn_is_exactly_one_commit_and_zero_reads(firestore_store):
    rpcs = RpcCounter(firestore_store.client)

    for index in range(3):  # turn 0 (creates the session) and later turns alike
        rpcs.reset()
        firestore_store.save_turn(make_turn(index))
        assert dict(rpcs.calls) == {"commit": 1}
        ((_, request),) = rpcs.requests
        assert len(request["writes"]) == 3  # session upsert + user message + reply, in that one commit

    # The counter does see reads: loading is one owner check plus one query.
    rpcs.reset()
    firestore_store.load_messages("s-1", "alice")
    assert rpcs.reads == 2 and set(rpcs.calls) <= READS


def test_message_documents_have_deterministic_ids_and_the_design_fields(firestore_store):
    firestore_store.save_turn(make_turn(0))
    firestore_store.save_turn(make_turn(1))
    session = firestore_store.client.collection("chat_sessions").document("s-1")

    docs = {snap.id: snap.to_dict() for snap in session.collection("messages").stream()}
    head = session.get().to_dict()

    assert sorted(docs) == ["000000", "000001", "000002", "000003"]
    assert set(docs["000003"]) == {"role", "content", "model", "created_at", "seq"}
    assert set(head) == {"owner", "title", "created_at", "updated_at", "turns"}
    assert head["turns"] == 2


def _save_conversation(store, session_id: str, turns: int, chars: int) -> list[tuple[str, str]]:
    texts = []
    for index in range(turns):
        user = (f"u{index}:" + "é🙂 abc " * chars)[:chars]
        reply = (f"a{index}:" + "שלום xyz " * chars)[:chars]
        store.save_turn(make_turn(index, session_id=session_id, user=user, assistant=reply))
        texts.append((user, reply))
    return texts


def test_2000_turn_conversation_is_saved_and_resumed_intact(firestore_store, capsys):
    start = time.perf_counter()
    texts = _save_conversation(firestore_store, "long", 2000, 600)
    saved_s = time.perf_counter() - start
    total_bytes = sum(len(u.encode()) + len(a.encode()) for u, a in texts)

    start = time.perf_counter()
    messages = firestore_store.load_messages("long", "alice")
    resumed_s = time.perf_counter() - start

    assert total_bytes > 2 * 1024 * 1024  # well over one document's 1 MiB
    assert [m.seq for m in messages] == list(range(4000))
    assert [m.content for m in messages] == [text for pair in texts for text in pair]
    assert firestore_store.list_sessions("alice")[0].turns == 2000
    with capsys.disabled():
        print(
            f"\n[firestore emulator] 2,000 turns ({total_bytes / 2**20:.1f} MiB): saved one by one in {saved_s:.1f} s"
            f" ({saved_s / 2000 * 1000:.1f} ms/turn), resumed 4,000 messages in {resumed_s:.2f} s"
        )


def test_resume_of_1000_messages_is_quick(firestore_store, capsys):
    _save_conversation(firestore_store, "mid", 500, 600)

    timings = []
    for _ in range(3):
        start = time.perf_counter()
        messages = firestore_store.load_messages("mid", "alice")
        timings.append(time.perf_counter() - start)

    assert len(messages) == 1000
    assert min(timings) < 5.0
    with capsys.disabled():
        print(f"\n[firestore emulator] resume of 1,000 messages: {', '.join(f'{t:.3f}' for t in timings)} s")


def test_delete_removes_every_message_across_several_batches(firestore_store):
    turns = DELETE_BATCH // 2 + 30  # more messages than one delete batch
    _save_conversation(firestore_store, "big", turns, 20)
    session = firestore_store.client.collection("chat_sessions").document("big")

    firestore_store.delete_session("big", "alice")

    assert list(session.collection("messages").limit(1).stream()) == []
    assert not session.get().exists


def test_a_delete_stopped_halfway_can_be_finished_by_deleting_again(firestore_store, monkeypatch):
    """Messages go first and the session document last: a delete that fails halfway leaves a conversation
    that is still listed (so its owner can delete it again), never message documents nobody can reach."""
    monkeypatch.setattr(firestore_module, "DELETE_BATCH", 2)
    _save_conversation(firestore_store, "half", 3, 10)  # 6 messages: three delete batches
    api = firestore_store.client._firestore_api
    commit, commits = api.commit, []

    def second_commit_fails(*args, **kwargs):
        commits.append(kwargs)
        if len(commits) == 2:
            raise gexc.PermissionDenied("injected failure")
        return commit(*args, **kwargs)

    monkeypatch.setattr(api, "commit", second_commit_fails)
    with pytest.raises(StoreError):
        firestore_store.delete_session("half", "alice")

    assert [s.session_id for s in firestore_store.list_sessions("alice")] == ["half"]
    assert [m.seq for m in firestore_store.load_messages("half", "alice")] == [2, 3, 4, 5]

    firestore_store.delete_session("half", "alice")

    session = firestore_store.client.collection("chat_sessions").document("half")
    assert list(session.collection("messages").stream()) == [] and not session.get().exists
    assert firestore_store.list_sessions("alice") == []


@pytest.mark.parametrize("call", ["save_turn", "load_messages", "list_sessions", "ping"])
def test_a_dead_store_fails_within_seconds_with_a_readable_error(monkeypatch, call):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    store = FirestoreStore(PROJECT, "chat-app-db")
    args = {
        "save_turn": (make_turn(0),),
        "load_messages": ("s-1", "alice"),
        "list_sessions": ("alice",),
        "ping": (),
    }[call]

    start = time.perf_counter()
    with pytest.raises(StoreError) as caught:
        getattr(store, call)(*args)
    elapsed = time.perf_counter() - start

    assert not isinstance(caught.value, SessionNotFound)
    assert caught.value.transient
    assert "chat-app-db" in str(caught.value) and "did not answer" in str(caught.value)
    assert elapsed < 8.0, f"{call} took {elapsed:.1f} s to fail"
    store.close()


def test_stopping_the_emulator_makes_save_fail_fast_and_restarting_recovers(own_firestore_emulator):
    store = FirestoreStore(PROJECT, "chat-app-db")
    store.save_turn(make_turn(0))

    own_firestore_emulator.stop()
    start = time.perf_counter()
    with pytest.raises(StoreError):
        store.save_turn(make_turn(1))
    assert time.perf_counter() - start < 8.0

    own_firestore_emulator.start()
    deadline = time.monotonic() + 30
    while True:  # gRPC reconnects with its own backoff
        try:
            store.save_turn(make_turn(0))
            break
        except StoreError:
            assert time.monotonic() < deadline
    store.ping()
    store.close()


def test_open_store_builds_a_firestore_store_from_settings(firestore_database):
    from chatapp.history import open_store
    from chatapp.settings import Settings

    store = open_store(Settings(store="firestore", firestore_database=firestore_database, google_cloud_project=PROJECT))
    assert isinstance(store, FirestoreStore)
    store.save_turn(make_turn(0))
    assert store.list_sessions("alice")[0].session_id == "s-1"
    store.close()
