"""RetryingStore: a failed save is reported, queued, retried in order and saved exactly once."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatapp.history.base import SessionNotFound, StoreError, Turn, TurnsChanged, Usage
from chatapp.history.firestore import FirestoreStore
from chatapp.history.pending import RetryingStore
from chatapp.history.sqlite import SqliteStore
from harness.firestore_emulator import PROJECT
from harness.rpc_counter import RpcCounter
from harness.support import poll
from tests.history.conftest import make_turn

# These tests run code in worker threads: an assert or error there must fail the test, not just warn.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


class FlakyStore(SqliteStore):
    """A real SQLite store that can be switched "down" (transient errors) and records what it saved."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.down = False
        self.attempts = 0
        self.saved: list[tuple[str, int]] = []
        self._record = threading.Lock()

    def save_turn(self, turn: Turn) -> None:
        with self._record:
            self.attempts += 1
        if self.down:
            raise StoreError("store is down")
        super().save_turn(turn)
        with self._record:
            self.saved.append((turn.session_id, turn.index))


@pytest.fixture
def flaky(tmp_path):
    return FlakyStore(tmp_path / "h.sqlite3")


@pytest.fixture
def later():
    """Turns reported saved later, in the order the callback saw them."""
    return []


@pytest.fixture
def retrying(flaky, later):
    store = RetryingStore(flaky, on_saved=lambda t: later.append((t.session_id, t.index)), first_backoff_s=0.05)
    yield store
    store.close(timeout=5)


def test_a_healthy_store_saves_at_once(retrying, flaky, later):
    assert retrying.save(make_turn(0)) is True
    assert flaky.saved == [("s-1", 0)] and retrying.pending_count() == 0 and later == []


def test_an_unsaved_turn_is_reported_queued_and_saved_later_once(retrying, flaky, later):
    flaky.down = True
    assert retrying.save(make_turn(0)) is False
    assert retrying.pending_count() == 1 and flaky.saved == []

    flaky.down = False
    assert retrying.flush(timeout=30)

    assert flaky.saved == [("s-1", 0)] and later == [("s-1", 0)]
    assert retrying.pending_count() == 0


def test_while_the_store_is_down_new_turns_queue_without_waiting_on_it(retrying, flaky):
    retrying._max_backoff_s = retrying._first_backoff_s = 60  # keep the retry thread quiet
    flaky.down = True
    retrying.save(make_turn(0))
    attempts = flaky.attempts

    assert [retrying.save(make_turn(i)) for i in (1, 2, 3)] == [False] * 3
    assert flaky.attempts == attempts  # answered at once, no call to the dead store
    assert retrying.pending_count() == 4
    flaky.down = False


def test_a_later_save_writes_older_queued_turns_first(retrying, flaky, later):
    retrying._max_backoff_s = retrying._first_backoff_s = 60  # only the inline save may drain
    flaky.down = True
    for turn in (make_turn(0), make_turn(0, session_id="s-2"), make_turn(1)):
        assert retrying.save(turn) is False
    flaky.down = False
    retrying._next_try = 0.0  # the backoff has run out

    assert retrying.save(make_turn(2)) is True

    assert flaky.saved == [("s-1", 0), ("s-2", 0), ("s-1", 1), ("s-1", 2)]
    assert later == [("s-1", 0), ("s-2", 0), ("s-1", 1)]


def test_a_store_down_through_several_background_retries_loses_nothing(retrying, flaky, later):
    """The retry thread itself meets failures (not only the first inline save): every queued turn survives
    them and is then saved once, in order, and reported once."""
    flaky.down = True
    for turn in (make_turn(0), make_turn(0, session_id="s-2"), make_turn(1)):
        assert retrying.save(turn) is False
    queued_attempts = flaky.attempts

    assert poll(lambda: flaky.attempts >= queued_attempts + 3, 30, 0.01), "the retry thread did not retry"
    assert retrying.pending_count() == 3  # failed retries dropped nothing

    flaky.down = False
    assert poll(lambda: retrying.pending_count() == 0, 30, 0.01), "the retry thread did not save the queue"
    assert flaky.saved == [("s-1", 0), ("s-2", 0), ("s-1", 1)]  # each once, in order
    assert later == [("s-1", 0), ("s-2", 0), ("s-1", 1)]


def test_close_saves_queued_turns_when_the_store_is_back(flaky, later):
    store = RetryingStore(flaky, on_saved=lambda t: later.append(t.index), first_backoff_s=60)  # no retry before
    flaky.down = True
    assert [store.save(make_turn(i)) for i in range(3)] == [False] * 3
    flaky.down = False

    store.close(timeout=5)  # shutdown: the last attempt

    assert flaky.saved == [("s-1", 0), ("s-1", 1), ("s-1", 2)] and later == [0, 1, 2]


def test_close_names_every_turn_it_could_not_save(flaky, caplog):
    store = RetryingStore(flaky, first_backoff_s=0.05)
    flaky.down = True
    store.save(make_turn(0))
    store.save(make_turn(0, session_id="s-2"))

    store.close(timeout=0.5)  # the store never comes back

    lost = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "never saved" in r.getMessage()]
    assert lost == [
        "history: turn s-1#0 was never saved (store down at shutdown)",
        "history: turn s-2#0 was never saved (store down at shutdown)",
    ]
    assert flaky.saved == []


def test_a_turn_no_retry_can_save_is_raised_not_queued(retrying):
    with pytest.raises(StoreError) as caught:
        retrying.save(make_turn(0, user="x" * 1_000_000))
    assert caught.value.transient is False
    assert retrying.pending_count() == 0


def test_a_queued_turn_the_store_refuses_for_good_is_reported_dropped(flaky, tmp_path):
    dropped = []
    store = RetryingStore(flaky, on_dropped=lambda t, e: dropped.append((t.index, str(e))), first_backoff_s=0.05)
    flaky.down = True
    store.save(make_turn(0))
    store.save(make_turn(0, session_id="s-2"))
    flaky.down = False
    flaky.save_turn = _refuse_s1(flaky.save_turn)

    assert store.flush(timeout=30)

    assert dropped == [(0, "refused")] and flaky.saved == [("s-2", 0)]
    store.close()


def _refuse_s1(save):
    def refuse(turn):
        if turn.session_id == "s-1":
            raise StoreError("refused", transient=False)
        save(turn)

    return refuse


def test_reads_show_queued_turns_and_delete_drops_them(retrying, flaky):
    retrying.save(make_turn(0))
    flaky.down = True
    retrying.save(make_turn(1))
    retrying.save(make_turn(0, session_id="only-queued"))

    assert [m.seq for m in retrying.load_messages("s-1", "alice")] == [0, 1, 2, 3]
    assert [m.content for m in retrying.load_messages("only-queued", "alice")] == ["question 0", "answer 0"]
    with pytest.raises(SessionNotFound):
        retrying.load_messages("only-queued", "bob")

    retrying.delete_session("only-queued", "alice")  # exists only in the queue
    assert retrying.pending_count() == 1
    with pytest.raises(SessionNotFound):
        retrying.delete_session("only-queued", "alice")
    flaky.down = False
    assert retrying.flush(timeout=30)
    assert ("only-queued", 0) not in flaky.saved  # a late retry does not bring it back


@pytest.mark.parametrize("action", ["delete", "truncate", "load"])
def test_another_owner_cannot_touch_queued_turns(retrying, flaky, action):
    """Bob naming Alice's conversation (only in the queue, or stored with later turns queued) changes nothing
    of hers: he is told it does not exist, and her queued turns are still saved later."""
    retrying.save(make_turn(0, session_id="stored"))
    flaky.down = True
    retrying.save(make_turn(1, session_id="stored"))
    retrying.save(make_turn(0, session_id="queued"))

    for session_id in ("stored", "queued"):
        with pytest.raises(SessionNotFound):
            if action == "delete":
                retrying.delete_session(session_id, "bob")
            elif action == "truncate":
                retrying.truncate(session_id, "bob", 0)
            else:
                retrying.load_messages(session_id, "bob")

    assert retrying.pending_count() == 2
    flaky.down = False
    assert retrying.flush(timeout=30)
    assert flaky.saved == [("stored", 0), ("stored", 1), ("queued", 0)]
    assert [m.content for m in retrying.load_messages("stored", "alice")] == [
        "question 0",
        "answer 0",
        "question 1",
        "answer 1",
    ]
    assert len(retrying.load_messages("queued", "alice")) == 2


def test_a_failing_callback_does_not_stop_retries(flaky):
    def boom(turn):
        raise RuntimeError("ui went away")

    store = RetryingStore(flaky, on_saved=boom, first_backoff_s=0.05)
    flaky.down = True
    store.save(make_turn(0))
    store.save(make_turn(1))
    flaky.down = False

    assert store.flush(timeout=30)
    assert flaky.saved == [("s-1", 0), ("s-1", 1)]
    store.close()


def test_many_threads_with_a_flapping_store_lose_nothing_and_keep_session_order(retrying, flaky):
    sessions, turns_each = 32, 15
    stop = threading.Event()

    def flap():
        while not stop.is_set():
            flaky.down = not flaky.down
            time.sleep(0.003)

    def chat(n: int):
        for index in range(turns_each):
            retrying.save(make_turn(index, session_id=f"c-{n}"))

    flapper = threading.Thread(target=flap)
    flapper.start()
    with ThreadPoolExecutor(sessions) as pool:
        workers = [pool.submit(chat, n) for n in range(sessions)]
    stop.set()
    flapper.join()
    for worker in workers:
        worker.result()  # a worker's exception fails the test here
    flaky.down = False

    assert retrying.flush(timeout=30)
    assert flaky.attempts > len(flaky.saved)  # the flapping really did fail some saves
    for n in range(sessions):
        mine = [index for sid, index in flaky.saved if sid == f"c-{n}"]
        assert mine == list(range(turns_each)), f"session c-{n} saved as {mine}"
        assert len(retrying.load_messages(f"c-{n}", "alice")) == 2 * turns_each


@pytest.mark.integration
def test_emulator_stopped_mid_conversation_turns_are_saved_in_order_exactly_once(own_firestore_emulator):
    firestore = FirestoreStore(PROJECT, "chat-app-db")
    rpcs = RpcCounter(firestore.client)
    later: list[int] = []
    store = RetryingStore(firestore, on_saved=lambda t: later.append(t.index), first_backoff_s=0.2, max_backoff_s=2)

    def turn(index: int) -> Turn:  # each commit adds its tokens to the day's counter: a second write would show
        return dataclasses.replace(make_turn(index), usage=Usage(10, 5))

    assert store.save(turn(0)) and store.save(turn(1))

    own_firestore_emulator.stop()  # its data is in memory: it comes back empty
    start = time.perf_counter()
    assert [store.save(turn(i)) for i in (2, 3, 4)] == [False, False, False]
    unsaved_s = time.perf_counter() - start
    assert store.pending_count() == 3 and unsaved_s < 8.0

    rpcs.reset()
    own_firestore_emulator.start()
    assert store.flush(timeout=60)

    assert later == [2, 3, 4]  # each reported once, in order
    # Each written once. Not "3 commits answered": a commit the restarting emulator applied but answered too late
    # (Deadline Exceeded) is replayed, refused whole (AlreadyExists) and found to be this very turn, so a busy
    # machine sees 2 answered commits for 3 turns written once. The day's counter, in the same commit, tells.
    assert firestore.tokens_used("alice", turn(2).day) == 3 * 15
    assert rpcs.succeeded["commit"] <= 3
    session = firestore.client.collection("chat_sessions").document("s-1")
    docs = [snap.to_dict() for snap in session.collection("messages").order_by("seq").stream()]
    assert [(d["seq"], d["content"]) for d in docs] == [
        (seq, f"{'question' if seq % 2 == 0 else 'answer'} {seq // 2}") for seq in range(4, 10)
    ]
    assert session.get().to_dict()["turns"] == 5
    store.close()


def test_the_chat_counts_late_saves_and_dropped_turns_for_its_metrics(tmp_path, monkeypatch):
    """The chat wires the retrying store's reports to /metrics: a dropped turn is a promise broken (the person
    was told "will retry"), so it must be countable and alertable, not only a log line."""
    from prometheus_client import REGISTRY

    import chatapp.server as server
    from chatapp.settings import load_settings

    built: list[RetryingStore] = []

    class Recorded(RetryingStore):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(server, "RetryingStore", Recorded)
    settings = load_settings({"CHAT_SQLITE_PATH": str(tmp_path / "h.sqlite3"), "CHAT_SECRET_KEY": "k" * 40})
    flaky = FlakyStore(tmp_path / "flaky.sqlite3")
    server.create_app(settings, store=flaky)
    (history,) = built

    def counts() -> tuple[float, float]:
        return tuple(REGISTRY.get_sample_value(f"chat_turns_{name}_total") or 0.0 for name in ("saved_late", "dropped"))

    before = counts()
    flaky.down = True
    assert history.save(make_turn(0)) is False and history.save(make_turn(0, session_id="s-2")) is False
    flaky.down = False
    flaky.save_turn = _refuse_s1(flaky.save_turn)  # s-1 refused for good, s-2 saved late
    assert history.flush(timeout=30)
    history.close(timeout=5)
    assert counts() == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize("refusal", [TurnsChanged(1, 2), StoreError("store is down")])
def test_an_undo_the_store_refuses_leaves_the_queued_turns_queued(retrying, flaky, refusal, monkeypatch):
    # The last turn waits in the queue (the store was down); the undo of it is refused: by the store's check
    # that the page has seen every turn, or by an outage. The queued turn must stay, to be saved later: the page
    # still shows it, since nothing was undone.
    retrying.save(make_turn(0))
    retrying._max_backoff_s = retrying._first_backoff_s = 60  # keep the retry thread quiet
    flaky.down = True
    assert retrying.save(make_turn(1)) is False

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise refusal

    monkeypatch.setattr(flaky, "truncate", refuse)
    with pytest.raises(type(refusal)):
        retrying.truncate("s-1", "alice", 1, shown=2)
    assert retrying.pending_count() == 1

    flaky.down = False
    monkeypatch.undo()
    assert retrying.flush(timeout=30)
    assert [m.content for m in flaky.load_messages("s-1", "alice")][2:] == ["question 1", "answer 1"]
