"""Two versions of the chat side by side: the chat process's own CPU time per burst of replies, and the burst's
wall time ÷ one reply's, each pair measured in turn on one model server, so a change is judged by same-run
pairwise ratios even on a loaded machine (where times alone do not separate two versions).

    git worktree add /tmp/before <commit>        # or any checkout of the other version
    python -m bench.pair /tmp/before             # light route, 32 replies of 40 tokens, 6 pairs
    python -m bench.pair /tmp/before --route chat --n 100 --pairs 4
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import harness.chat_process
from bench.processes import ROOT, fake_model_server
from bench.streaming import LABEL, MODEL, ROOM, ROUTES, TOKENS_PER_S, _run
from harness.chat_process import ChatProcess, start_chat

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def chat_from(checkout: Path, env: dict[str, str]) -> Iterator[ChatProcess]:
    """The chat of another checkout (start_chat runs `python -m chatapp` in harness.chat_process.ROOT)."""
    saved = harness.chat_process.ROOT
    harness.chat_process.ROOT = checkout
    try:
        workdir = tempfile.TemporaryDirectory(prefix="bench-pair-")
        process = start_chat(env, Path(workdir.name))
    finally:
        harness.chat_process.ROOT = saved
    try:
        yield process
    finally:
        process.stop()
        workdir.cleanup()


def pair(other: Path, route: str = "light", n: int = 32, tokens: int = 40, pairs: int = 6) -> dict:
    call = ROUTES[route][1]
    figures: dict[str, list[tuple[float, float]]] = {"other": [], "this": []}
    with fake_model_server(TOKENS_PER_S, None) as model_url:
        env = {"SELF_HOSTED_URL": model_url, "SELF_HOSTED_LABEL": LABEL, "SELF_HOSTED_MODEL": MODEL,
               "CHAT_CONCURRENCY": str(ROOM)}  # fmt: skip
        with chat_from(other, env) as a, chat_from(ROOT, env) as b:
            apps = {"other": a, "this": b}
            for app in apps.values():
                _run(call, app.url, n, tokens=tokens)  # warm-up
            for i in range(pairs):
                for name in ("other", "this") if i % 2 == 0 else ("this", "other"):
                    app = apps[name]
                    one = _run(call, app.url, 1, tokens=tokens)[0]
                    before = cpu_s(app.process.pid)
                    wall = _run(call, app.url, n, tokens=tokens)[0]
                    figures[name].append((cpu_s(app.process.pid) - before, wall / one))
    a, b = figures["other"], figures["this"]
    return {
        "cpu_s": (statistics.median(x[0] for x in a), statistics.median(x[0] for x in b)),
        "ratio": (statistics.median(x[1] for x in a), statistics.median(x[1] for x in b)),
        "cpu_pairwise": [y[0] / x[0] for x, y in zip(a, b, strict=True)],
        "ratio_pairwise": [y[1] / x[1] for x, y in zip(a, b, strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="a checkout of the other version")
    parser.add_argument("--route", choices=sorted(ROUTES), default="light")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    f = pair(args.other.resolve(), args.route, args.n, args.tokens, args.pairs)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.route}, {args.n} at once, {args.pairs} pairs, load average {load}")
    for key, what, unit in (("cpu", "chat CPU per burst", " s"), ("ratio", f"{args.n} at once ÷ one", "×")):
        other, this = f[f"{key}_s" if key == "cpu" else key]
        pairwise = f[f"{key}_pairwise"]
        listed = ", ".join(f"{x:.2f}" for x in pairwise)
        print(f"{what}: other {other:.2f}{unit}, this {this:.2f}{unit}; this ÷ other, pairwise median "
              f"{statistics.median(pairwise):.2f} ({listed})")  # fmt: skip


if __name__ == "__main__":
    main()
