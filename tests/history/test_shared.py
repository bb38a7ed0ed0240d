"""What replicas share through the store (chatapp.history.shared), on SQLite and on the Firestore emulator: the
daily limit's reservations, session-hash bindings, failed sign-ins. Two `DailyUsage` objects on one store
stand for two replicas."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import chatapp.usage
from chatapp.history.base import ChatStore, StoreError, Usage
from chatapp.history.shared import Admission, Hold, SharedState
from chatapp.history.sqlite import SqliteStore
from chatapp.usage import DailyUsage, OverLimit
from tests.history.conftest import make_turn

# Every count here is on this day (DailyUsage's `now`, the turns' time), not on the real one: a run that crossed
# midnight UTC once failed, its turns stored on the day before the limit read.
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def replica(store: ChatStore, limit: int) -> DailyUsage:
    assert isinstance(store, SharedState)
    return DailyUsage(store.tokens_used, limit, shared=store, now=lambda: NOW)


def test_alternating_replicas_stop_at_the_limit_and_quote_the_stored_count(store: ChatStore) -> None:
    replicas = [replica(store, 100), replica(store, 100)]
    for r in replicas:
        assert r.used("alice") == 0  # each caches the count, as a page load does
    served = 0
    with pytest.raises(OverLimit) as refused:
        for index in range(20):
            usage = replicas[index % 2]
            hold = usage.reserve("alice", 40)
            turn = make_turn(index, owner="alice", at=NOW)
            store.save_turn(turn.__class__(**{**turn.__dict__, "usage": Usage(10, 20)}))
            usage.add("alice", 30, turn.day)
            hold.release()
            served += 1
    assert served == 4  # 0, 30, 60, 90 are below 100; at 120 both replicas refuse
    assert store.tokens_used("alice", NOW.date()) == 120
    assert "(120 used)" in str(refused.value)


def test_reservations_at_once_on_two_replicas_pass_the_limit_by_at_most_one(store: ChatStore) -> None:
    replicas = [replica(store, 100), replica(store, 100)]

    def try_once(index: int) -> bool:
        try:
            replicas[index % 2].reserve("bob", 30)
        except OverLimit:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(try_once, range(16)))
    assert admitted == 4  # held 0, 30, 60, 90 < 100: the fourth passes the limit by less than one reservation


def test_a_released_or_expired_hold_no_longer_counts(store: ChatStore) -> None:
    assert isinstance(store, SharedState)
    day = NOW.date()
    now = time.time()
    assert store.reserve_tokens("carol", day, Hold("hdead", 90, now - 1), 100, now - 2).admitted
    assert store.reserve_tokens("carol", day, Hold("hlive", 100, now + 60), 100, now).admitted  # the dead one ended
    refused = store.reserve_tokens("carol", day, Hold("hnext", 5, now + 60), 100, now)
    assert not refused.admitted and refused.held == 100
    store.release_tokens("carol", day, "hlive")
    assert store.reserve_tokens("carol", day, Hold("hnext", 5, now + 60), 100, now).admitted


def test_the_first_caller_of_a_session_hash_keeps_it(store: ChatStore) -> None:
    assert isinstance(store, SharedState)
    assert store.bind_session("tab-1", "browser:victim", time.time()) == "browser:victim"
    assert store.bind_session("tab-1", "browser:thief", time.time()) == "browser:victim"
    assert store.bind_session("tab-1", "browser:victim", time.time()) == "browser:victim"


def test_failed_sign_ins_keep_the_newest_within_the_window(store: ChatStore) -> None:
    assert isinstance(store, SharedState)
    keys = ["addr:10.0.0.1", "user:ada"]
    for at in (1.0, 2.0, 3.0, 4.0):
        store.add_sign_in_failure(keys, at, keep=3, window_s=60)
    store.add_sign_in_failure(["user:ada"], 62.0, keep=3, window_s=60)  # 1.0 and 2.0 left the window
    assert store.sign_in_failures([*keys, "user:bob"]) == {
        "addr:10.0.0.1": [2.0, 3.0, 4.0],
        "user:ada": [3.0, 4.0, 62.0],
        "user:bob": [],
    }


def test_sqlite_forgets_the_failed_sign_ins_of_keys_that_stopped_failing(tmp_path: Path) -> None:
    # Firestore deletes them by its TTL policy on expires_at (stack/firestore.py); SQLite has no TTL, so a
    # spray of sign-ins over many user names would otherwise grow the file for ever.
    store = SqliteStore(tmp_path / "history.sqlite3")
    for n in range(50):
        store.add_sign_in_failure([f"user:guess{n}", "addr:10.0.0.9"], 1_000.0 + n, keep=3, window_s=60)
    store.add_sign_in_failure(["user:ada"], 1_200.0, keep=3, window_s=60)
    with sqlite3.connect(tmp_path / "history.sqlite3") as conn:
        left = sorted(key for (key,) in conn.execute("SELECT key FROM sign_in_failures"))
    assert left == ["user:ada"]  # the newest guess was at 1,049: its window ended at 1,109
    assert store.sign_in_failures(["user:ada", "user:guess49"]) == {"user:ada": [1_200.0], "user:guess49": []}


def test_a_sqlite_file_from_before_the_expiry_column_opens_and_counts_failed_sign_ins(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sign_in_failures (key TEXT PRIMARY KEY, times TEXT NOT NULL) WITHOUT ROWID")
        conn.execute("INSERT INTO sign_in_failures VALUES ('user:old', '[1.0]')")
    store = SqliteStore(path)
    store.add_sign_in_failure(["user:ada"], 5.0, keep=3, window_s=60)
    store.add_sign_in_failure(["user:ada"], 6.0, keep=3, window_s=60)
    assert store.sign_in_failures(["user:ada", "user:old"]) == {"user:ada": [5.0, 6.0], "user:old": []}


def spend(store: ChatStore, owner: str, tokens: int, at: datetime = NOW) -> None:
    """A turn another replica served, `tokens` long, saved to the store."""
    turn = make_turn(0, session_id=f"s-{time.monotonic_ns()}", owner=owner, at=at)
    store.save_turn(turn.__class__(**{**turn.__dict__, "usage": Usage(tokens, 0)}))


def admitted(usage: DailyUsage, owner: str, tokens: int) -> bool:
    try:
        usage.reserve(owner, tokens)
    except OverLimit:
        return False
    return True


class Outage(SqliteStore):
    """A real store whose reservation calls can fail (`down`) or hang until `answer` is set (`hang`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = self.hang = False
        self.answer = threading.Event()
        self.threads: list[str] = []

    def reserve_tokens(self, owner: str, day: date, hold: Hold, limit: int, now: float) -> Admission:
        self.threads.append(threading.current_thread().name)
        if self.hang and not self.answer.wait(10):
            raise StoreError("no answer after 10 s")  # a waiting reservation fails on the log assertion, not a hang
        if self.down:
            raise StoreError("the store is down")
        return super().reserve_tokens(owner, day, hold, limit, now)

    def release_tokens(self, owner: str, day: date, hold_id: str) -> None:
        if self.down:
            raise StoreError("the store is down")
        super().release_tokens(owner, day, hold_id)


def test_a_store_that_fails_a_reservation_is_judged_on_this_replicas_count_and_logged(tmp_path, caplog) -> None:
    store = Outage(tmp_path / "history.sqlite3")
    spend(store, "ada", 120)
    usage = replica(store, 100)
    store.down = True
    with caplog.at_level(logging.WARNING, logger="chatapp.usage"), pytest.raises(OverLimit, match=r"\(120 used\)"):
        usage.reserve("ada", 10)  # the count read by this replica is over the limit
    assert [r.getMessage() for r in caplog.records] == [
        "could not reserve in the store, judging on this replica's count: the store is down"
    ]
    assert usage.reserve("bob", 10).stored is None  # admitted on this replica's own count
    store.close()


def test_a_store_that_does_not_answer_in_time_is_waited_for_store_wait_s(tmp_path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(chatapp.usage, "STORE_WAIT_S", 0.05)
    store = Outage(tmp_path / "history.sqlite3")
    usage = replica(store, 100)
    store.hang = True
    with caplog.at_level(logging.WARNING, logger="chatapp.usage"):
        reservation = usage.reserve("ada", 10)
    store.answer.set()
    assert [r.getMessage() for r in caplog.records] == [
        "could not reserve in the store, judging on this replica's count: timed out"
    ]
    assert reservation.stored is None
    assert store.threads[0].startswith("usage-store")  # the store's calls are named in a thread dump
    store.close()


def test_a_release_the_store_refuses_is_logged_with_when_the_hold_ends(tmp_path, caplog) -> None:
    store = Outage(tmp_path / "history.sqlite3")
    reservation = replica(store, 100).reserve("ada", 10)
    store.down = True
    with caplog.at_level(logging.WARNING, logger="chatapp.usage"):
        reservation.release()
    assert [r.getMessage() for r in caplog.records] == [
        "could not release reserved tokens (they are freed after 900 s): the store is down"
    ]
    store.close()


def test_a_hold_left_by_a_replica_that_died_ends_after_hold_s(store: ChatStore, monkeypatch) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr(chatapp.usage, "time", SimpleNamespace(time=lambda: clock[0]))
    died, alive = replica(store, 100), replica(store, 100)
    assert died.reserve("dan", 100).stored is not None  # never released: its replica died mid-reply
    clock[0] += chatapp.usage.HOLD_S - 0.1
    assert not admitted(alive, "dan", 1)
    clock[0] += 0.1
    assert admitted(alive, "dan", 1)


def test_the_count_a_reservation_reads_serves_the_page_and_never_loses_a_reply_counted_here(store: ChatStore) -> None:
    assert isinstance(store, SharedState)
    reads: list[str] = []
    clock = [1000.0]

    def read(owner: str, day: date) -> int:
        reads.append(owner)
        return store.tokens_used(owner, day)

    usage = DailyUsage(read, 1000, shared=store, now=lambda: NOW, clock=lambda: clock[0])
    spend(store, "eve", 30)  # by another replica
    reservation = usage.reserve("eve", 10)
    assert (reservation.owner, reservation.tokens) == ("eve", 10)
    assert usage.used("eve") == 30 and reads == []  # the reservation's answer is the cached count
    clock[0] += 200
    spend(store, "eve", 20)
    usage.reserve("eve", 10)  # the store's 50 is newer than the cached 30
    clock[0] += 200  # 400 s after the first answer, 200 after this one
    assert usage.used("eve") == 50 and reads == []
    usage.reserve("eve", 10)  # the same 50: still a fresh reading
    clock[0] += 200
    assert usage.used("eve") == 50 and reads == []
    usage.add("eve", 25, NOW.date())  # served here; its turn is not in the store yet
    usage.reserve("eve", 10)  # the store lags (50): the larger count stays
    assert usage.used("eve") == 75 and reads == []


def test_a_store_reservation_counts_the_utc_day_whatever_the_machines_time_zone(store: ChatStore, monkeypatch) -> None:
    late = datetime.combine(NOW.date(), datetime.min.time(), UTC) + timedelta(hours=23, minutes=30)
    spend(store, "fay", 120, at=late)
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: already tomorrow there
    time.tzset()
    try:
        with pytest.raises(OverLimit, match=r"\(120 used\)"):
            DailyUsage(store.tokens_used, 100, shared=store, now=lambda: late).reserve("fay", 10)
    finally:
        monkeypatch.undo()
        time.tzset()
