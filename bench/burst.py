"""One burst of replies as a whole process, so two routes can be timed in pairs (A, B, A, B, …) by any tool that
times processes, against servers kept up in between.

    python -m bench.burst serve                 # fake model (short replies), the chat and the bare app; prints
                                                # their URLs as JSON and serves until SIGTERM or Ctrl-C
    python -m bench.burst run URL ROUTE [N]     # N (100) replies started at one instant through ROUTE (chat =
                                                # the chat's Gradio /chat, light = its /api/chat, bare = the bare
                                                # Gradio app); prints p50 / p95 ms to the first text and the wall

The replies are short (5 tokens at 50 tokens/s), so a process's wall time is mostly the burst being taken in,
not the replies streaming; both servers stay warm across runs (one warm-up burst each before serving).
"""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import sys
import threading
import time

from bench.processes import fake_model_server
from bench.streaming import ROUTES, _apps, _run, percentile

TOKENS_PER_S = 50.0
REPLY_TOKENS = 5
N = 100


def serve() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fake_model_server(TOKENS_PER_S, REPLY_TOKENS) as model_url, _apps(model_url, N) as apps:
        for app, call in ROUTES.values():
            _run(call, apps[app], N)  # warm-up
        print(json.dumps(apps), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


def run(url: str, route: str, n: int = N) -> None:
    started = time.perf_counter()
    _, firsts = _run(ROUTES[route][1], url, n)
    wall = time.perf_counter() - started
    p50, p95 = 1000 * statistics.median(firsts), 1000 * percentile(firsts, 95)
    print(f"{route} n={n} first text p50 {p50:.0f} ms p95 {p95:.0f} ms wall {wall:.2f} s", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["run"] and len(sys.argv) in (4, 5):
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else N)
    else:
        raise SystemExit(__doc__)
