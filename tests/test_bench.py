"""`make bench` runs to its tables: `python -m bench --quick` (every measurement with tiny sizes, the same code
paths and tables) and `python -m bench.cost`, as processes, each row printed with a figure. A bench that crashes
at a row (as on 2026-12-06, `Settings.concurrency` after settings moved to pydantic) fails here, not on the day
someone needs the figures. The figures themselves are not judged: tiny sizes on a shared machine mean nothing.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import start_window, streaming
from bench.goals import FLOOR_MARGIN, verdict
from harness.firestore_emulator import INSTALL_HINT, find_emulator_jar
from harness.support import require
from scripts.local_model import llama_server_installed

ROOT = Path(__file__).resolve().parents[1]
# Issue 16's rows (bench.goals), then the rest of `make bench`'s table: the start of each row's first cell.
STREAMING_ROWS = (
    "4 chats at once ÷ one",
    "first-token overhead, 100 streams in flight, p50",
    "same, p95",
    "first-token overhead, 100 started at one instant, p50",
)
OTHER_ROWS = (
    "per-request layer: identity",
    "per-request layer: session binding",
    "per-request layer: usage",
    "per-request layer: lock",
    "per-request layer: guard (",
    "per-request layer: guard, per streamed chunk",
    "a turn with a 1 MB image",
    "Firestore RPCs per turn",
    "resume a 10-message conversation",
    "start-up: process start to /healthz 200",
    "Pulumi program under mocks",
)
VERDICTS = {"yes", "at floor", "NO"}
NUMBER = re.compile(r"-?\d[\d,]*(\.\d+)?")


def _rows(table: str, first_cell: str) -> dict[str, list[str]]:
    """The markdown table whose header starts with `first_cell`: each body row's cells, by its first cell."""
    lines = table.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |")), None)
    if start is None:
        return {}
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def _find(rows: dict[str, list[str]], prefix: str) -> list[str] | None:
    return next((cells for name, cells in rows.items() if name.startswith(prefix)), None)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


# About a minute of CPU in all (bench --quick ~55 s, bench.cost ~20 s); on a shared 2-core machine at load 20
# that is 5 minutes of wall time, so the limit is generous.
@pytest.mark.timeout(1800)
def test_bench_prints_every_row_with_a_figure() -> None:
    emulator = find_emulator_jar() is not None and shutil.which("java") is not None
    require(emulator, "the Cloud Firestore emulator", INSTALL_HINT)
    require(llama_server_installed(), "llama.cpp with SmolLM2 (bench.cost's wake-up)", "run `make local-model`")
    # Both at once: each mostly waits on processes it started (the chat, Gradio, llama.cpp, the emulator).
    bench, cost = _start("-m", "bench", "--quick"), _start("-m", "bench.cost")
    try:
        out, err = bench.communicate(timeout=1500)
        _check_bench(out, f"\n--- python -m bench --quick, exit {bench.returncode}, stderr ends:\n{err[-3000:]}")
        assert bench.returncode == 0, err[-3000:]
        cost_out, cost_err = cost.communicate(timeout=300)
        _check_cost(cost_out, f"\n--- exit {cost.returncode}, stderr ends:\n{cost_err[-3000:]}")
        assert cost.returncode == 0, cost_err[-3000:]
    finally:
        for process in (bench, cost):
            if process.poll() is None:  # failed or timed out: it and every server it started (its process group)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)


def _check_bench(out: str, context: str) -> None:
    streaming = _rows(out, "streaming (issue 16)")
    for name in STREAMING_ROWS:
        cells = _find(streaming, name)
        assert cells is not None, f"no row {name!r} in the streaming table{context}"
        # goal, floor, model server direct, then each route's figure and its verdict
        assert len(cells) == 8, cells
        for figure in (cells[1], cells[2], cells[3], cells[4], cells[6]):
            assert NUMBER.search(figure), f"{name}: no figure in {figure!r}"
        assert cells[5] in VERDICTS and cells[7] in VERDICTS, cells
    rest = _rows(out, "measure")
    for name in OTHER_ROWS:
        cells = _find(rest, name)
        assert cells is not None, f"no row {name!r} in the table{context}"
        assert NUMBER.search(cells[1]) and NUMBER.search(cells[2]), f"{name}: no figure or baseline in {cells}"


def _check_cost(out: str, context: str) -> None:
    rows = _rows(out, "workload")
    # The wake-up measured here (the chat starting llama.cpp through the stand-in autoscaler), not only the
    # documented estimate: bench.cost falls back to that one alone when the measurement fails.
    measured = [cells for cells in rows.values() if "measured here by the chat" in cells[1]]
    assert measured, f"bench.cost measured no wake-up:\n{out}{context}"
    assert all(NUMBER.search(cells[2]) for cells in rows.values()), out


@pytest.mark.parametrize(
    ("ours", "floor", "goal", "expected"),
    [
        (1.10, 1.30, 1.15, "yes"),  # goal met, whatever the floor
        (1.15, 1.00, 1.15, "yes"),  # the goal is inclusive
        (1.30, 1.20, 1.15, "at floor"),  # floor above the goal, ours within 10% of it
        (1.20 * FLOOR_MARGIN + 0.01, 1.20, 1.15, "NO"),  # more than 10% above the floor
        (1.20, 1.10, 1.15, "NO"),  # the floor meets the goal: ours must too
        (600.0, 300.0, 500.0, "NO"),
    ],
)
def test_verdict(ours: float, floor: float, goal: float, expected: str) -> None:
    assert verdict(ours, floor, goal) == expected


def _recorded_order(monkeypatch: pytest.MonkeyPatch, measure: str, rounds: int) -> list[list[str]]:
    """The targets each measured round of `bench.streaming.<measure>` runs, in order (warm-ups left out), with
    `_run` recording instead of sending."""
    names = {streaming._chat_once: "chat", streaming._light_once: "light", streaming._direct_once: "direct"}
    calls: list[tuple[str, int]] = []

    def record(call: Any, url: str, n: int, spread_s: float = 0.0, tokens: int = 256) -> tuple[float, list[float]]:
        calls.append(("bare" if url == "bare-url" else names[call], n))
        return 1.0, [0.5] * n

    monkeypatch.setattr(streaming, "_run", record)
    up = streaming.Servers("model-url", {"chat": "chat-url", "bare": "bare-url"}, 20.0)
    if measure == "concurrency":
        streaming.concurrency(n=4, rounds=rounds, on=up)
        measured = [name for name, n in calls[4:] if n == 4]  # after the warm-ups: each target's n at once
        width = 4
    else:
        streaming.first_token_overhead(n=4, rounds=rounds, on=up)
        measured = [name for name, _ in calls[3:] if name != "direct"][: 3 * rounds]  # the first pattern's
        width = 3
    return [measured[i : i + width] for i in range(0, len(measured), width)]


def test_first_token_rounds_take_every_order_of_the_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """One burst's p50 swings with what ran just before it; the default rounds go through every order of the
    routes, so no route is always measured right after the same one."""
    orders = _recorded_order(monkeypatch, "first_token_overhead", 6)
    assert sorted(map(tuple, orders)) == sorted(itertools.permutations(["chat", "light", "bare"])), orders


def test_concurrency_rounds_put_every_target_in_every_place(monkeypatch: pytest.MonkeyPatch) -> None:
    orders = _recorded_order(monkeypatch, "concurrency", 4)
    for place in range(4):
        assert sorted(order[place] for order in orders) == ["bare", "chat", "direct", "light"], orders


# py-spy's collapsed stacks (`--format raw`): thread name, then frames outermost first, then the sample count.
_LOOP = 'process 1:"python -m chatapp";Thread 1 (active+gil);Server.run (uvicorn/server.py:86)'
_ASGI = "RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:422)"
_WORKER = "Thread 7 (active+gil);Thread._bootstrap_inner (threading.py:1045);WorkerThread.run (anyio/_asyncio.py:1)"


def test_start_window_puts_each_sample_in_its_place() -> None:
    """The split `python -m bench.start_window` prints: what the Guard does before Gradio, what Gradio's app
    does, a response written (wherever from), the handler apart from its model request, and waiting left out."""
    raw = "\n".join(
        [
            f"{_LOOP};{_ASGI};Guard.__call__ (chatapp/web.py:110);Guard._check (chatapp/web.py:1) 7",
            f"{_LOOP};{_ASGI};Guard.__call__ (chatapp/web.py:110);Mount.handle (starlette/routing.py:464) 5",
            f"{_LOOP};{_ASGI};Guard.__call__ (chatapp/web.py:1);RequestResponseCycle.send (uvicorn/h.py:1) 3",
            f"{_LOOP};{_ASGI};Mount.handle (starlette/routing.py:1);RequestResponseCycle.send (uvicorn/h.py:1) 2",
            f"{_LOOP};Queue.process_events (gradio/queueing.py:1) 11",
            f"{_WORKER};ApiHandlers.api_chat (chatapp/ui_api.py:1);ChatService.reply (chatapp/chat.py:1) 13",
            f"{_WORKER};ApiHandlers.api_chat (chatapp/ui_api.py:1);OpenAICompatModel.stream (chatapp/m.py:1) 17",
            f"{_WORKER};ApiHandlers.api_chat (chatapp/ui_api.py:1);SocketIO.readinto (socket.py:1) 19",
            f"{_WORKER};run_sync_iterator_async (gradio/utils.py:1) 23",
        ]
    )
    assert dict(start_window.split(raw)) == {
        "in front of Gradio": 7,
        "Gradio's app": 5,
        "sending": 3 + 2,
        "event loop, other": 11,
        "handler": 13,
        "model client": 17,  # the blocking read (19) only waits: left out
        "worker, other": 23,
    }
    assert set(start_window.split(raw)) == set(start_window.PLACES)
