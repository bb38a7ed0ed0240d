"""Where the chat spends its CPU under the streaming bench's load: py-spy samples the chat process while
`bench.streaming` sends 100 streams arriving over 2.5 s, then 100 at one instant.

    python -m bench.profile              # prints the top frames by own time and the top chatapp frames
    python -m bench.profile --raw out.txt  # also keeps py-spy's collapsed stacks
    python -m bench.profile --from-raw out.txt  # summarizes kept stacks again
    python -m bench.profile --burst        # only the 100 at one instant (after the same warm-up)
    python -m bench.profile --burst --route light  # the same through the light route, /api/chat

py-spy attaches with ptrace (root, or kernel.yama.ptrace_scope=0). Idle threads (a thread pool waiting for
work, the event loop in `select`) are dropped (`--idle` off), so the figures are CPU samples.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.processes import chat, fake_model_server
from bench.streaming import LABEL, MODEL, ROUTES, _run

RATE_HZ = 50  # low enough that py-spy itself costs the 2-core machine little
# Leaves where a thread waits rather than works, though py-spy counts it active: a blocking socket read (a
# model stream), a condition wait, a server thread's select (the metrics endpoint) and uvloop's native loop
# (its work and its idle look the same from Python).
WAITING = ("SocketIO.readinto (", "Condition.wait (", "_PollLikeSelector.select (", "Runner.run (")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]*)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """`func (path:line)` → `func (pkg/file.py)`: lines dropped so one function's samples add up."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/chatapp/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/chatapp/":
                path = "chatapp/" + path
            break
    return f"{match['func']} ({path})"


def samples(raw: str) -> Iterator[tuple[list[str], int]]:
    """(frames outermost first, as `_short` names them; sample count) of each stack in py-spy's collapsed
    output (`--format raw`: the thread's name, the frames, then the count)."""
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_short(f) for f in stack.split(";")[1:]]  # the first is the process/thread name
        if count.isdigit() and frames:
            yield frames, int(count)


def summarize(raw: str, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: the share of samples each function is on top of (own), each chatapp
    function is anywhere in (inclusive), and each library (by top-level package) is on top of."""
    own: collections.Counter[str] = collections.Counter()
    busy: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = busy_total = 0
    for frames, n in samples(raw):
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            if "chatapp/" in frame:
                ours[frame] += n
        if not frames[-1].startswith(WAITING):
            busy_total += n
            for frame in set(frames):
                busy[frame] += n
        package = frames[-1].rsplit("(", 1)[-1].split("/", 1)[0].rstrip(")")
        packages[package] += n

    def share(counts: collections.Counter[str], of: int, n: int = top) -> list[tuple[str, float]]:
        return [(k, 100 * v / of) for k, v in counts.most_common(n)] if of else []

    return {
        "own": share(own, total),
        "chatapp_inclusive": share(ours, total),
        "packages": share(packages, total),
        "busy_inclusive": share(busy, busy_total, 30),
        "samples": total,
        "busy_samples": busy_total,
    }


def profile(raw_path: Path | None = None, burst_only: bool = False, route: str = "chat") -> dict:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("py-spy is missing: `make venv` installs it (a dev dependency)")
    with (
        fake_model_server(20.0, 100) as model_url,
        chat(
            SELF_HOSTED_URL=model_url, SELF_HOSTED_LABEL=LABEL, SELF_HOSTED_MODEL=MODEL, CHAT_CONCURRENCY="100"
        ) as app,
        tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp,
    ):
        call = ROUTES[route][1]
        _run(call, app.url, 100)  # warm-up, as the bench does
        out = Path(tmp, "raw.txt")
        spy_process = subprocess.Popen(
            [spy, "record", "--format", "raw", "--rate", str(RATE_HZ), "--pid", str(app.process.pid),
             "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaching; not a test, a few lost samples change nothing
        if not burst_only:
            _run(call, app.url, 100, 2.5)
        _run(call, app.url, 100)
        spy_process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        _, err = spy_process.communicate(timeout=60)
        if not out.exists():
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')}")
        raw = out.read_text()
        if raw_path is not None:
            raw_path.write_text(raw)
    return summarize(raw)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks in this file")
    parser.add_argument("--from-raw", type=Path, help="summarize a file kept by --raw instead of profiling")
    parser.add_argument("--burst", action="store_true", help="profile only the 100 started at one instant")
    parser.add_argument("--route", choices=["chat", "light"], default="chat", help="/chat (Gradio) or /api/chat")
    args = parser.parse_args()
    figures = (
        summarize(args.from_raw.read_text())
        if args.from_raw
        else profile(raw_path=args.raw, burst_only=args.burst, route=args.route)
    )
    print(f"{figures['samples']} samples of the chat process at {RATE_HZ} Hz, {figures['busy_samples']} not waiting")
    for key, title in (
        ("packages", "CPU by package (own samples)"),
        ("own", "top frames by own samples"),
        ("chatapp_inclusive", "chatapp frames, inclusive"),
        ("busy_inclusive", "frames not waiting, inclusive (share of the samples not waiting)"),
    ):
        print(f"\n{title}:")
        for name, pct in figures[key]:
            print(f"  {pct:5.1f}%  {name}")


if __name__ == "__main__":
    main()
