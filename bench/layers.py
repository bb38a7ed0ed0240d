"""The chat's per-request layers one by one, in-process, each as a ratio against a no-op call timed in the same
run (so the next change to any of them shows its cost even on a noisy machine):

- **guard**: `chatapp.web.Guard` in front of an ASGI app that answers at once, per request and per streamed
  chunk (`bench.guard_cost`);
- **identity**: reading the caller from a request: the browser-id cookie checked (`BrowserIds.valid`, an HMAC)
  and `identity.caller` on the `gr.Request` Gradio hands a handler;
- **session binding**: `SessionOwners.claim` of a session hash among 10,000 others;
- **usage**: `DailyUsage.reserve` then the reply's `add` and the reservation's `release`, with a daily limit on
  (the counter cached, as after a page load); and a count read from the store while 10,000 other people are
  counted today (each person's first message or page load of the day);
- **conversation lock**: taking and releasing a `ChatSession.save_lock` nobody holds.

    python -m bench.layers
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace

from bench import guard_cost
from chatapp.browser_id import BrowserIds
from chatapp.chat import ChatSession
from chatapp.identity import caller
from chatapp.session_owners import SessionOwners
from chatapp.usage import DailyUsage

ROUNDS = 5


def _per_call(fn: Callable[[], object], n: int) -> float:
    """Seconds per call of `fn`, median of ROUNDS rounds of n calls."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def _noop() -> None:
    return None


def _identity() -> Callable[[], object]:
    ids = BrowserIds(b"k" * 32)
    cookie = ids.mint()
    request = SimpleNamespace(username=f"browser:{cookie}")

    def once() -> object:
        ids.valid(cookie)
        return caller(request)

    return once


def _binding() -> Callable[[], object]:
    owners = SessionOwners()
    for i in range(10_000):
        owners.claim(f"s{i}", f"browser:{i}")
    return lambda: owners.claim("s5000", "browser:5000")


def _usage() -> Callable[[], object]:
    usage = DailyUsage(lambda owner, day: 0, limit=10**12)
    usage.used("user:a")  # cached, as after the page's load
    today = datetime.now(UTC).date()

    def once() -> None:
        hold = usage.reserve("user:a", 2_000)
        usage.add("user:a", 1_000, today)
        hold.release()

    return once


def _usage_read() -> Callable[[], object]:
    """A count read from the store (not cached yet) while 10,000 other people are counted today."""
    usage = DailyUsage(lambda owner, day: 0, limit=10**12)
    for i in range(10_000):
        usage.used(f"user:{i}")
    names = (f"user:new-{i}" for i in itertools.count())
    return lambda: usage.used(next(names))


def _lock() -> Callable[[], object]:
    session = ChatSession("user:a")

    def once() -> None:
        with session.save_lock:
            pass

    return once


def measure(n: int = 20_000) -> dict[str, dict[str, float]]:
    """Per layer: seconds per call (`s`), the no-op's (`noop_s`) and their ratio, all from this run."""
    noop = _per_call(_noop, n)
    figures = {}
    for name, make in (("identity", _identity), ("session binding", _binding), ("usage", _usage),
                       ("usage, a store read among 10,000 counted", _usage_read), ("lock", _lock)):  # fmt: skip
        s = _per_call(make(), n)
        figures[name] = {"s": s, "noop_s": noop, "ratio": s / noop}
    g = guard_cost.measure(scale=n / 20_000)
    figures["guard"] = {"s": g["request_guarded_s"], "noop_s": g["request_bare_s"],
                        "ratio": g["request_guarded_s"] / g["request_bare_s"]}  # fmt: skip
    figures["guard, per streamed chunk"] = {
        "s": g["chunk_added_s"] + g["stream_bare_s"] / guard_cost.CHUNKS,
        "noop_s": g["stream_bare_s"] / guard_cost.CHUNKS,
        "ratio": (g["stream_guarded_s"] / g["stream_bare_s"]),
    }
    return figures


def main() -> None:
    for name, f in measure().items():
        print(f"{name}: {f['s'] * 1e6:.2f} µs per call, no-op {f['noop_s'] * 1e6:.2f} µs: {f['ratio']:.1f}×")


if __name__ == "__main__":
    main()
