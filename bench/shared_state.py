"""What sharing state between replicas costs (chatapp.history.shared), on SQLite and Google's emulator:

- a new session hash: `SessionOwners.bind` with the store (one create), against a known one (the cache);
- a turn under a daily limit: the reservation (read + conditional write) and its release (one write), and
  the RPCs they add to a turn, counted on the Firestore client (harness/rpc_counter.py).

    .venv/bin/python -m bench.shared_state
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio

from chatapp.history.shared import SharedState
from chatapp.history.sqlite import SqliteStore
from chatapp.session_owners import SessionOwners
from chatapp.usage import DailyUsage
from harness.firestore_emulator import FirestoreEmulator, find_emulator_jar
from harness.rpc_counter import RpcCounter

ROUNDS = 200


def _median_ms(run: Callable[[int], None], rounds: int = ROUNDS) -> float:
    times = []
    for n in range(rounds):
        started = time.perf_counter()
        run(n)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(store: SharedState) -> dict[str, float]:
    owners = SessionOwners(shared=store)
    prefix = uuid.uuid4().hex[:8]
    new = _median_ms(lambda n: anyio.run(owners.bind, f"{prefix}-{n}", "browser:bench"))
    known = _median_ms(lambda n: anyio.run(owners.bind, f"{prefix}-{n}", "browser:bench"))
    usage = DailyUsage(store.tokens_used, 10**12, shared=store)  # type: ignore[attr-defined]
    usage.used("browser:bench")
    reserve = _median_ms(lambda n: usage.reserve("browser:bench", 1000).release())
    return {"new_session_ms": new, "known_session_ms": known, "reserve_release_ms": reserve}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SqliteStore(Path(folder, "history.sqlite3"))
        print("SQLite:", {k: round(v, 3) for k, v in measure(sqlite).items()})
        sqlite.close()
    jar = find_emulator_jar()
    if jar is None:
        print("Firestore emulator not installed: skipped")
        return
    with FirestoreEmulator(jar) as emulator:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        emulator.warm_up()
        from chatapp.history.firestore import FirestoreStore

        firestore = FirestoreStore("demo-bench", f"bench-{uuid.uuid4().hex[:8]}")
        measure(firestore)  # warms the emulator's code paths for these calls
        counter = RpcCounter(firestore.client)
        figures = measure(firestore)
        per = {name: count / (3 * ROUNDS) for name, count in counter.calls.items()}  # 3 measured loops
        print("Firestore emulator:", {k: round(v, 3) for k, v in figures.items()})
        print("RPCs per call, all three loops averaged:", per)
        counter.reset()
        usage = DailyUsage(firestore.tokens_used, 10**12, shared=firestore)
        usage.used("browser:rpc")
        counter.reset()
        usage.reserve("browser:rpc", 1000).release()
        print("RPCs of one reservation + release:", dict(counter.calls))
        firestore.close()


if __name__ == "__main__":
    main()
