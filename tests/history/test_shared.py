"""What replicas share through the store (chatapp.history.shared), on SQLite and on the Firestore emulator: the
daily limit's reservations, session-hash bindings, failed sign-ins. Two `DailyUsage` objects on one store
stand for two replicas."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from chatapp.history.base import ChatStore, Usage
from chatapp.history.shared import Hold, SharedState
from chatapp.usage import DailyUsage, OverLimit
from tests.history.conftest import make_turn

NOW = datetime.now(UTC)


def replica(store: ChatStore, limit: int) -> DailyUsage:
    assert isinstance(store, SharedState)
    return DailyUsage(store.tokens_used, limit, shared=store)


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
    store.add_sign_in_failure(["user:ada"], 100.0, keep=3, window_s=60)  # the older ones left the window
    assert store.sign_in_failures([*keys, "user:bob"]) == {
        "addr:10.0.0.1": [2.0, 3.0, 4.0],
        "user:ada": [100.0],
        "user:bob": [],
    }
