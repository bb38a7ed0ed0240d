"""Where the chat spends the start of a burst, beside the bare Gradio app: the part that decides the burst's
first-token p50 (README "Performance").

py-spy (`--gil`: only samples of the thread holding the GIL, the work that makes the others wait) records each
app for the first WINDOW_S seconds of a burst of 100 streams, when the events start and first tokens go out;
the bursts alternate between the two apps. Both event loops are saturated through the window, so the two totals
come out about equal: what compares is the share of the window each place takes. Each sample is put in one
place:

- **sending**: uvicorn writing a response. Apart, because where it happens differs: the chat's session
  binding holds Gradio's answer to `POST /call` until the event id is the caller's and sends it itself, in
  front of Gradio; the bare app's answer goes out from inside Gradio's app;
- **in front of Gradio**: the request is in the parent app (its middleware and routing: the chat's Guard,
  session binding, CORS, body limit, security headers) and not yet inside Gradio's mounted app;
- **Gradio's app**: inside the mounted app (its routes, dependencies, the event stream);
- **event loop, other**: the rest of the loop's thread (Gradio's queue, uvicorn, asyncio);
- **handler**: the event's own code in a worker thread (the chat's `/chat` or the bare app's function), the
  model request aside;
- **model client**: the request to the model and the reading of its stream (the same code in both apps);
- **worker, other**: the rest of the worker threads (Gradio's and anyio's wrappers).

    python -m bench.start_window              # 8 bursts each, 0.8 s windows
    python -m bench.start_window --bursts 4 --window 1.0

py-spy attaches with ptrace (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.profile import WAITING, samples
from bench.streaming import ROUTES, _run, servers

WINDOW_S = 0.8  # the burst's p50 first token comes at 0.3-0.7 s on 2 cores
RATE_HZ = 250
PLACES = (
    "sending",
    "in front of Gradio",
    "Gradio's app",
    "event loop, other",
    "handler",
    "model client",
    "worker, other",
)
# The handler's frame in each app: the chat's `/chat` (chatapp.ui_api) and the bare app's function.
HANDLERS = ("ApiHandlers.api_chat", "build.<locals>.chat")


def place(frames: list[str]) -> str:
    """Where one sample is (PLACES), from its frames, outermost first, as `bench.profile.samples` gives them."""
    names = [frame.split(" (", 1)[0] for frame in frames]
    if "Thread._bootstrap_inner" in names:
        if "OpenAICompatModel.stream" in names:
            return "model client"
        return "handler" if any(h in names for h in HANDLERS) else "worker, other"
    if "RequestResponseCycle.send" in names:
        return "sending"
    if "Mount.handle" in names:
        return "Gradio's app"
    if "RequestResponseCycle.run_asgi" in names:
        return "in front of Gradio"
    return "event loop, other"


def split(raw: str) -> collections.Counter[str]:
    """Samples per place from py-spy's collapsed stacks; samples that only wait (bench.profile.WAITING) left out."""
    counts: collections.Counter[str] = collections.Counter()
    for frames, n in samples(raw):
        if not frames[-1].startswith(WAITING):
            counts[place(frames)] += n
    return counts


def _pid_of(url: str) -> int:
    """The process serving `url` on 127.0.0.1 (the bench starts both apps itself)."""
    port = url.rsplit(":", 1)[1]
    if shutil.which("ss") is None:
        raise SystemExit("`ss` (iproute2) is missing: it finds the process serving each app")
    found = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(found.split("pid=", 1)[1].split(",", 1)[0])


def record(bursts: int = 8, window_s: float = WINDOW_S) -> dict[str, collections.Counter[str]]:
    spy = str(Path(sys.executable).with_name("py-spy"))
    raws: dict[str, list[str]] = {"chat": [], "bare": []}
    with servers() as up, tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        apps = {name: up.apps[ROUTES[name][0]] for name in raws}
        for name, url in apps.items():
            _run(ROUTES[name][1], url, 100, tokens=100)  # warm-up, as the bench does
        pids = {name: _pid_of(url) for name, url in apps.items()}
        for i in range(bursts):
            for name in ("chat", "bare") if i % 2 == 0 else ("bare", "chat"):
                out = Path(tmp, f"{name}-{i}.txt")
                spy_process = subprocess.Popen(
                    [spy, "record", "--format", "raw", "--gil", "--nonblocking", "--rate", str(RATE_HZ),
                     "--pid", str(pids[name]), "--output", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                time.sleep(1.5)  # py-spy attaching
                burst = threading.Thread(target=_run, args=(ROUTES[name][1], apps[name], 100, 0.0, 100))
                burst.start()
                time.sleep(window_s)
                spy_process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                _, err = spy_process.communicate(timeout=60)
                burst.join()
                if not out.exists():
                    raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')}")
                raws[name].append(out.read_text())
    return {name: split("\n".join(texts)) for name, texts in raws.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=8, help="bursts per app")
    parser.add_argument("--window", type=float, default=WINDOW_S, help="seconds recorded from each burst's start")
    args = parser.parse_args()
    counts = record(args.bursts, args.window)
    chat, bare = counts["chat"], counts["bare"]
    total_chat, total_bare = sum(chat.values()) or 1, sum(bare.values()) or 1
    # Both event loops are saturated through the window, so the totals are about equal whatever each app costs
    # per event: what compares is the share of the window each place takes.
    print(f"GIL-holding samples at {RATE_HZ} Hz in the first {args.window:g} s of {args.bursts} bursts of 100 each")
    print("| where | chat | share | bare Gradio | share |")
    print("|---|---|---|---|---|")
    for where in PLACES:
        print(
            f"| {where} | {chat[where]} | {100 * chat[where] / total_chat:.1f}% | {bare[where]} | "
            f"{100 * bare[where] / total_bare:.1f}% |"
        )
    print(f"| all | {total_chat} | 100% | {total_bare} | 100% |")


if __name__ == "__main__":
    main()
