"""Issue 15's leftover (issue 21's finding 6 alongside): with CHAT_AUTH=none anyone can mint callers and
session hashes at will. A flood of them must neither take over a binding someone else holds nor grow memory
without bound. Session hashes are bound in the store (the replica's map is only a cache), event ids stay in
the process and are forgotten only once idle."""

from __future__ import annotations

from pathlib import Path

from chatapp.history.sqlite import SqliteStore
from chatapp.session_owners import SessionOwners
from tests.security.inprocess import run_apart

VICTIM, THIEF = "browser:victim", "browser:thief"


def test_a_flood_of_sessions_neither_frees_a_victims_hash_nor_grows_the_map(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3")
    owners = SessionOwners(capacity=50, shared=store)

    async def flood() -> None:
        assert await owners.bind("victim-tab", VICTIM)
        for n in range(500):  # each from a fresh browser id, as a script dropping its cookie would
            assert await owners.bind(f"flood-{n}", f"browser:minted-{n}")
        assert len(owners._sessions) <= 50 and owners.owner("victim-tab") is None  # forgotten here…
        assert not await owners.bind("victim-tab", THIEF)  # …but the store still says whose it is
        assert await owners.bind("victim-tab", VICTIM)

    run_apart(flood)
    store.close()


def test_a_flood_of_events_never_evicts_one_in_use() -> None:
    clock = [0.0]
    owners = SessionOwners(capacity=50, live_s=900, clock=lambda: clock[0])
    assert owners.claim("victim-event", VICTIM)
    refused = sum(not owners.claim(f"flood-{n}", f"browser:minted-{n}") for n in range(500))
    assert refused == 451 and len(owners._owners) == 50  # bounded, and the newcomers wait
    assert owners.owner("victim-event") == VICTIM
    assert not owners.claim("victim-event", THIEF)
    clock[0] = 1000  # idle past live_s: now they may be forgotten
    assert owners.claim("later", "browser:someone")
    assert owners.owner("victim-event") is None
