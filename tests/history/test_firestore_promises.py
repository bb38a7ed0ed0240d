"""Firestore store promises that only a failing or a watched call shows, on the emulator.

- Every call that can fail turns into a StoreError naming what the person was doing ("saving a turn",
  "undoing a turn"…): each RPC of each operation is made to fail in turn, not only the first.
- Every RPC carries the store's deadline and its retry budget, so a store that stops answering is given up on
  in seconds (the UI thread waits on save_turn): the timeout and retry each RPC receives are recorded. Reads
  ask only for the fields they use (an owner check reads `owner`, a delete reads ids): the usage counter, for
  one, also holds the live reservations of every replica.
- A caller with no owner is answered at once, without reading anything.

The faults are injected at the client's GAPIC layer (`client._firestore_api`), where every call of
google-cloud-firestore passes with its retry and timeout. What is raised there is what that layer raises for a
call the server refused: `google.api_core.exceptions.PermissionDenied` (gRPC PERMISSION_DENIED, "Missing or
insufficient permissions."), which no retry of ours repeats, so the layer raises it as is, from the call itself
for a streamed query too (api_core fetches a stream's first response before returning it).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore

from chatapp.history.base import SessionNotFound, StoreError, Unanswered, Usage
from chatapp.history.firestore import FirestoreStore, usage_id
from harness.firestore_emulator import PROJECT, FirestoreEmulator
from harness.rpc_counter import RPCS
from tests.history.conftest import T0, make_turn

pytestmark = pytest.mark.integration

WRITE_S = 4.0  # neither the defaults (5 s, 20 s) nor ping's 3 s: a call given the wrong budget shows
READ_S = 9.0
PING_S = 3.0
DAY = date(2025, 1, 2)
REFUSED = "Missing or insufficient permissions."  # Firestore's PERMISSION_DENIED text


@dataclass(frozen=True)
class Call:
    rpc: str
    timeout: float | None  # the `timeout=` the GAPIC method got (None: left to the client's default)
    retry_s: float | None  # the retry budget it got (None: the client's default retry, or none)
    reads: tuple[str, ...] | None = None  # the fields a read asks for (a mask or a projection); None: all


def _fields(request: Any) -> tuple[str, ...] | None:
    if not isinstance(request, dict):
        return None
    if request.get("mask") is not None:  # a document get
        return tuple(request["mask"].field_paths)
    query = request.get("structured_query")
    if query is not None and "select" in query:  # a query's projection
        return tuple(f.field_path for f in query.select.fields)
    return None


class Rpcs:
    """Every RPC method of one client's GAPIC layer, wrapped: records each call's deadline and retry budget and
    can make the call numbered `fail_at` (1 = the first after `reset`) refused by the server."""

    def __init__(self, client: firestore.Client) -> None:
        self.calls: list[Call] = []
        self.fail_at: int | None = None
        api = client._firestore_api
        for name in RPCS:
            setattr(api, name, self._wrap(name, getattr(api, name)))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def watched(*args: Any, **kwargs: Any) -> Any:
            retry = kwargs.get("retry")
            fields = _fields(kwargs.get("request"))
            self.calls.append(Call(name, kwargs.get("timeout"), getattr(retry, "timeout", None), fields))
            if len(self.calls) == self.fail_at:
                raise gexc.PermissionDenied(REFUSED)
            return method(*args, **kwargs)

        return watched

    def reset(self, fail_at: int | None = None) -> None:
        self.calls.clear()
        self.fail_at = fail_at


@pytest.fixture
def stores(firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    """Makes stores with distinct budgets, each on a database of its own (wiped and closed afterwards)."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    made: list[tuple[FirestoreStore, str]] = []

    def make() -> tuple[FirestoreStore, Rpcs]:
        database = f"t-{uuid.uuid4().hex[:20]}"
        store = FirestoreStore(PROJECT, database, write_timeout_s=WRITE_S, read_timeout_s=READ_S)
        made.append((store, database))
        return store, Rpcs(store.client)

    yield make
    for store, database in made:
        store.close()
        if firestore_emulator.running:
            firestore_emulator.reset(database)


def _seed(store: FirestoreStore) -> None:
    """Two turns of alice's "s-1" (with usage counted) and a failed message kept after them."""
    store.save_turn(make_turn(0))
    store.save_turn(replace(make_turn(1), usage=Usage(3, 4)))
    store.save_unanswered("s-1", "alice", Unanswered("lost", "the model failed", 2, T0))


W, R = (WRITE_S, WRITE_S), (READ_S, WRITE_S)  # (timeout, retry budget): send-path calls, reads
OWNER_CHECK = ("batch_get_documents", *W, ("owner",))
IDS = ("__name__",)  # a query for document ids only
# operation -> (the action its errors name, the call, every RPC it makes with its budgets, in order)
OPERATIONS: dict[str, tuple[str, Callable[[FirestoreStore], Any], list[tuple[Any, ...]]]] = {
    "save_turn": ("saving a turn", lambda s: s.save_turn(make_turn(2)), [("commit", *W)]),
    "load_messages": (
        "loading a conversation",
        lambda s: s.load_messages("s-1", "alice"),
        [OWNER_CHECK, ("run_query", *R)],
    ),
    "tokens_used": (
        "reading today's usage",
        lambda s: s.tokens_used("alice", DAY),
        [("batch_get_documents", *R, ("owner", "tokens"))],
    ),
    "list_sessions": ("listing conversations", lambda s: s.list_sessions("alice"), [("run_query", *R)]),
    "delete_session": (
        "deleting a conversation",
        lambda s: s.delete_session("s-1", "alice"),
        # the messages' ids, one batch deleting them, the ids again (none left), then the session document
        [OWNER_CHECK, ("run_query", *R, IDS), ("commit", *R), ("run_query", *R, IDS), ("commit", *R)],
    ),
    "truncate": (
        "undoing a turn",
        lambda s: s.truncate("s-1", "alice", 1),
        [OWNER_CHECK, ("run_query", *R, IDS), ("commit", *R)],
    ),
    "describe_session": (
        "reading a conversation",
        lambda s: s.describe_session("s-1", "alice"),
        [("batch_get_documents", *W)],
    ),
    "rename_session": (
        "renaming a conversation",
        lambda s: s.rename_session("s-1", "alice", "a new name"),
        [OWNER_CHECK, ("commit", *W)],
    ),
    "search_sessions": (
        "searching conversations",
        lambda s: s.search_sessions("alice", "answer"),  # in a message only: the messages are read too
        [("run_query", *R), ("run_query", *R)],
    ),
    "save_unanswered": (
        "keeping a failed message",
        lambda s: s.save_unanswered("s-1", "alice", Unanswered("again", "the model failed", 2, T0)),
        [OWNER_CHECK, ("commit", *W)],
    ),
    "clear_unanswered": (
        "forgetting a failed message",
        lambda s: s.clear_unanswered("s-1", "alice"),
        [("batch_get_documents", *W), ("commit", *W)],
    ),
    "ping": ("checking the store", lambda s: s.ping(), [("batch_get_documents", PING_S, PING_S, ("owner",))]),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_rpc_carries_the_stores_deadline_and_retry_budget_and_reads_only_what_it_needs(stores, operation):
    _, call, expected = OPERATIONS[operation]
    store, rpcs = stores()
    _seed(store)

    rpcs.reset()
    call(store)

    assert rpcs.calls == [Call(*e) for e in expected]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_refused_call_at_any_step_names_the_action_in_the_error(stores, operation):
    action, call, expected = OPERATIONS[operation]
    for step in range(1, len(expected) + 1):
        store, rpcs = stores()  # a fresh database each time: a step may have written before the refusal
        _seed(store)
        rpcs.reset(fail_at=step)

        with pytest.raises(StoreError) as caught:
            call(store)

        message = str(caught.value)
        assert not isinstance(caught.value, SessionNotFound), f"step {step}: {message}"
        assert len(rpcs.calls) == step, f"step {step}: the store went on after a refused call"
        assert f"refused access while {action} " in message, f"step {step}: {message}"
        assert REFUSED in message and f"{store._where} refused" in message
        assert "Firestore database 't-" in message and f" in project {PROJECT!r} refused" in message


def test_a_caller_without_an_owner_is_answered_at_once_without_a_read(stores):
    store, rpcs = stores()
    _seed(store)
    rpcs.reset()

    assert store.list_sessions("") == []
    assert store.search_sessions("", "answer") == []
    assert store.search_sessions("alice", " ") == []  # no words: nothing to look for
    assert store.tokens_used("", DAY) == 0

    assert rpcs.calls == []


def test_the_store_writes_to_the_database_it_is_given(firestore_database):
    session = f"s-{uuid.uuid4().hex}"
    store = FirestoreStore(PROJECT, firestore_database)
    store.save_turn(make_turn(0, session_id=session))
    store.close()

    # Another client on that database, and none on the default one, sees the conversation.
    same, default = firestore.Client(project=PROJECT, database=firestore_database), firestore.Client(project=PROJECT)
    try:
        assert same.collection("chat_sessions").document(session).get().exists
        assert not default.collection("chat_sessions").document(session).get().exists
    finally:
        same.close()
        default.close()


def test_a_usage_counter_id_exists_for_any_owner_text_and_differs_between_owners():
    # Owner ids may hold any character, a lone surrogate too (a browser id or a header as sent); UTF-8 alone
    # cannot encode one, and the counter's id must not fail a turn for it.
    ids = {usage_id(owner, DAY) for owner in ("alice", "bob", "a\ud800", "a\udfff", "a/b")}
    assert len(ids) == 5
    assert all(i.startswith("2025-01-02_") and "/" not in i for i in ids)


def test_documents_missing_fields_still_list_describe_load_and_clear(stores):
    # What the store reads defensively: documents of an older version, or written by hand in the console.
    store, _ = stores()
    sessions = store.client.collection("chat_sessions")
    sessions.document("old").set({"owner": "alice", "updated_at": T0})  # no title, creation time nor turns
    sessions.document("old").collection("messages").document("000000").set({"seq": 0})
    sessions.document("bare").set({"owner": "alice"})  # not even a time: never listed (the order needs it)
    epoch = datetime.fromtimestamp(0, UTC)

    (listed,) = store.list_sessions("alice")
    for summary in (listed, store.describe_session("old", "alice")):
        assert (summary.session_id, summary.title, summary.turns) == ("old", "", 0)
        assert summary.created_at == summary.updated_at == T0
    bare = store.describe_session("bare", "alice")
    assert (bare.title, bare.turns, bare.created_at, bare.updated_at) == ("", 0, epoch, epoch)
    assert store.search_sessions("alice", "none") == []  # an empty title, not the text "None"
    (message,) = store.load_messages("old", "alice")
    assert (message.role, message.content, message.model, message.created_at, message.seq) == ("", "", None, epoch, 0)
    assert (message.usage, message.images) == (None, ())

    store.clear_unanswered("old", "alice")  # no turns: nothing left worth listing
    assert [s.session_id for s in store.list_sessions("alice")] == []


def test_describe_and_search_tell_whose_conversation_it_is_and_when_it_began_and_changed(stores):
    store, _ = stores()
    store.save_turn(make_turn(0))
    store.save_turn(make_turn(1))  # one second later: begun and last changed differ
    begun, changed = make_turn(0).created_at, make_turn(1).created_at

    described = store.describe_session("s-1", "alice")
    (by_title,) = store.search_sessions("alice", "question")
    (by_message,) = store.search_sessions("alice", "answer")

    for summary in (described, by_title.summary, by_message.summary):
        assert (summary.session_id, summary.owner, summary.turns) == ("s-1", "alice", 2)
        assert (summary.created_at, summary.updated_at) == (begun, changed)
    assert by_title.excerpt == ""  # a title match has nothing more to show
    assert "answer" in by_message.excerpt


def test_a_store_that_cannot_find_credentials_says_so_naming_the_step(monkeypatch, tmp_path):
    # Outside the emulator the client looks for credentials as it is made; a key file that is not there is one
    # way to find none, and needs no network.
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))

    with pytest.raises(StoreError) as caught:
        FirestoreStore(PROJECT, "chat-app-db")

    assert "no usable Google credentials while connecting: " in str(caught.value)
    assert "Firestore database 'chat-app-db' in project 'hybrid-chat-test'" in str(caught.value)


def test_the_daily_counter_has_the_documented_fields_and_counts_a_one_token_reply(stores):
    store, _ = stores()
    store.save_turn(replace(make_turn(0), usage=Usage(1, 0)))  # the smallest reply that costs anything
    store.save_turn(replace(make_turn(1), usage=Usage(2, 3)))

    assert store.tokens_used("alice", DAY) == 6
    # chat_usage/{day}_{owner hash} = {owner, day, tokens, updated_at, holds}: what someone reading the database
    # (or cleaning it up by day) finds there.
    counter = store.client.collection("chat_usage").document(usage_id("alice", DAY)).get().to_dict()
    assert counter == {"owner": "alice", "day": "2025-01-02", "tokens": 6, "updated_at": make_turn(1).created_at}


def test_a_search_stops_at_its_limit_twenty_unless_told(stores):
    store, _ = stores()
    for index in range(21):
        store.save_turn(
            make_turn(0, session_id=f"s-{index:02d}", user=f"otters {index}", at=T0 + timedelta(hours=index))
        )

    hits = store.search_sessions("alice", "otters")
    assert isinstance(hits, list) and len(hits) == 20
    assert [h.summary.session_id for h in store.search_sessions("alice", "otters", limit=2)] == ["s-20", "s-19"]


def test_an_id_firestore_cannot_hold_is_no_such_conversation_without_a_call_and_so_is_no_owner(stores):
    store, rpcs = stores()
    _seed(store)
    failed = Unanswered("lost", "the model failed", 0, T0)
    calls = {
        "save_unanswered": lambda sid, owner: store.save_unanswered(sid, owner, failed),
        "load_messages": store.load_messages,
        "describe_session": store.describe_session,
        "rename_session": lambda sid, owner: store.rename_session(sid, owner, "a name"),
    }

    def outcomes(cases: list[tuple[str, str]]) -> dict[tuple[str, str, str], str]:
        seen = {}
        for name, call in calls.items():
            for sid, owner in cases:
                try:
                    call(sid, owner)
                    seen[name, sid[:8], owner] = "answered"
                except Exception as exc:  # which exception it is, is the promise
                    seen[name, sid[:8], owner] = type(exc).__name__
        return seen

    rpcs.reset()
    bad_ids = outcomes([(sid, "alice") for sid in ("", "s-1/messages", "..", "__x__", "x" * 1501)])
    assert bad_ids == dict.fromkeys(bad_ids, "SessionNotFound")
    assert rpcs.calls == []  # refused before anything is sent

    no_owner = outcomes([("s-1", "")])
    assert no_owner == dict.fromkeys(no_owner, "SessionNotFound")
