"""What full-text search costs on SQLite: a search against listing the same person's conversations, and a turn's
write with the search index against the same write without it (its triggers dropped), in one run.

Run: `PYTHONPATH=. .venv/bin/python -m bench.search` (about a minute on 2 cores). Two people with 500
conversations of 10 turns each (10,000 turns, ~1.5 M words), words drawn from a 5,000-word vocabulary.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from chatapp.history.base import Turn
from chatapp.history.sqlite import SqliteStore

VOCABULARY = [f"w{i}" for i in range(5000)]
TRIGGERS = (
    "search_message_saved",
    "search_message_removed",
    "search_title_added",
    "search_title_changed",
    "search_session_removed",
)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def _median_ms(action: Callable[[], object], runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _turn_ms(folder: Path, with_index: bool, rng: random.Random) -> float:
    store = SqliteStore(folder / f"turns-{with_index}-{rng.random()}.sqlite3")
    try:
        if not with_index:
            with sqlite3.connect(store._path) as conn:
                for trigger in TRIGGERS:
                    conn.execute(f"DROP TRIGGER {trigger}")
        started = time.perf_counter()
        for conversation in range(100):
            for index in range(5):
                turn = Turn(f"c{conversation}", "a", index, _text(rng, 30), _text(rng, 120), "m", datetime.now(UTC))
                store.save_turn(turn)
        return (time.perf_counter() - started) / 500 * 1000
    finally:
        store.close()


def main() -> None:
    rng = random.Random(1)
    folder = Path(tempfile.mkdtemp(prefix="bench-search-"))
    store = SqliteStore(folder / "history.sqlite3")
    try:
        for owner in ("alice", "bob"):
            for conversation in range(500):
                for index in range(10):
                    at = datetime.now(UTC)
                    store.save_turn(
                        Turn(f"{owner}{conversation:04d}", owner, index, _text(rng, 30), _text(rng, 120), "m", at)
                    )
        listing = _median_ms(lambda: store.list_sessions("alice"))
        rows = [
            ("one word", _median_ms(lambda: store.search_sessions("alice", "w4242"))),
            ("two words (each a prefix of ~110 words)", _median_ms(lambda: store.search_sessions("alice", "w42 w17"))),
            ("a one-letter word (whole words only)", _median_ms(lambda: store.search_sessions("alice", "w"))),
        ]
    finally:
        store.close()
    print(f"list_sessions (baseline): {listing:.2f} ms")
    for name, ms in rows:
        print(f"search, {name}: {ms:.2f} ms ({ms / listing:.1f}x the listing)")
    try:
        with_index = statistics.median(_turn_ms(folder, True, rng) for _ in range(3))
        without = statistics.median(_turn_ms(folder, False, rng) for _ in range(3))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"save_turn: {with_index:.2f} ms with the search index, {without:.2f} ms without ({with_index / without:.2f}x)"
    )


if __name__ == "__main__":
    main()
