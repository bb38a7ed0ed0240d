"""Start-up: process start to `/healthz` 200, and the Pulumi program's run time under mocks."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.processes import ROOT
from harness.chat_process import start_chat


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def chat_startup(rounds: int = 3) -> dict[str, float]:
    """Seconds from `python -m chatapp` to `/healthz` 200; baseline: importing gradio alone."""
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as workdir:
            started = time.perf_counter()
            chat = start_chat({}, Path(workdir))
            times.append(time.perf_counter() - started)
            chat.stop()
    baseline = statistics.median(_seconds([sys.executable, "-c", "import gradio"]) for _ in range(rounds))
    return {"startup_s": statistics.median(times), "import_gradio_s": baseline}


def pulumi_program(rounds: int = 3) -> dict[str, float]:
    """Seconds for the whole program under mocks (`make plan`); baseline: importing the Pulumi SDKs alone."""
    plan = statistics.median(_seconds([sys.executable, "-m", "stack.render", "--json"]) for _ in range(rounds))
    imports = "import pulumi, pulumi_gcp, pulumi_kubernetes, pulumi_docker"
    baseline = statistics.median(_seconds([sys.executable, "-c", imports]) for _ in range(rounds))
    return {"program_s": plan, "import_sdks_s": baseline}
