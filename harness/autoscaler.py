"""A stand-in for KEDA's scale-to-zero loop (stack/gemma_scaling.py), driving the real chat on this machine.

KEDA asks Managed Prometheus `sum(increase(chat_self_hosted_wanted_total[idle]))` and keeps the model server at
one replica while that is above 0, at zero otherwise. Here a thread reads the same counter from the chat's own
/metrics, starts a local model server process after `wake_delay_s` (standing in for GPU node, image, weights and
engine) when a turn wanted it, and stops it (by its pid: every connection closes, as when a pod goes) once
`idle_s` passed without one.

    server = ModelServerProcess.fake(port)          # the vLLM-shaped fake, or llama_server(port)
    with StandInAutoscaler(chat.metrics_url, server, wake_delay_s=1.0, idle_s=5.0) as scaler:
        scaler.up                   whether the model server is running
        scaler.events               [(monotonic time, "demand" | "scaling up" | "ready" | "scaled down")]
        scaler.wakes                seconds from the scale-up decision to the server answering, per wake-up
        scaler.hold() / release()   a test's gate: demand is still seen, but nothing scales until release();
                                    release(once=True) lets exactly one scale-up or scale-down through
        scaler.scrapes              how many times it has read /metrics (tests wait for it to move on)

`python -m harness.autoscaler --metrics URL --port N` runs one in the foreground beside `make dev`.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol, Self

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.support import free_port, wait_until_ready
from scripts.processes import start_group, stop_group

ROOT = Path(__file__).resolve().parents[1]
# The counter KEDA's query reads (chatapp/metrics.py SELF_HOSTED_WANTED; stack/gemma_scaling.py WAKE_COUNTER).
WAKE_COUNTER = "chat_self_hosted_wanted"


class Scalable(Protocol):
    def start(self) -> object:
        """Start the server and return once it answers."""
        ...

    def stop(self) -> None: ...


class ModelServerProcess:
    """An OpenAI-compatible server as its own process on 127.0.0.1:port; `start` waits until /v1/models answers."""

    def __init__(self, command: list[str], port: int, log_path: Path | None = None, ready_s: float = 120.0) -> None:
        self.command = command
        self.port = port
        self.log_path = log_path
        self.ready_s = ready_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @classmethod
    def fake(cls, port: int, model: str = "fake-model", tokens_per_s: float = 200.0) -> ModelServerProcess:
        """harness.fakes.openai_server in a process of its own (in-process, its keep-alive connections would
        outlive a stop and keep answering)."""
        module = ["-m", "harness.fakes.openai_server", "--port", str(port), "--model", model]
        return cls([sys.executable, *module, "--tokens-per-s", str(tokens_per_s)], port)

    def start(self) -> Self:
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = start_group(self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # the child holds its own descriptor
        try:
            wait_until_ready(self.process, f"{self.base_url}/models", self.ready_s, f"the model server {self.command}")
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_group(process, signal.SIGTERM, grace_s=10)


def llama_server(port: int, log_path: Path | None = None) -> Scalable:
    """The real llama.cpp server with SmolLM2 (scripts.local_model), as `make dev` runs it."""
    from scripts.local_model import LlamaServer

    return LlamaServer(port, log_path=log_path)


def wanted_total(metrics_text: str) -> float | None:
    """The wake counter's value in a /metrics page, or None when the page has none."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == WAKE_COUNTER:
            return sum(s.value for s in family.samples if s.name == f"{WAKE_COUNTER}_total")
    return None


class StandInAutoscaler:
    def __init__(
        self,
        metrics_url: str,
        server: Scalable,
        *,
        wake_delay_s: float,
        idle_s: float,
        poll_s: float = 0.2,
    ) -> None:
        self.metrics_url = metrics_url
        self.server = server
        self.wake_delay_s = wake_delay_s
        self.idle_s = idle_s
        self.poll_s = poll_s
        self.up = False
        self.scrapes = 0
        self.events: list[tuple[float, str]] = []
        self.wakes: list[float] = []
        self._allowed = threading.Event()
        self._allowed.set()
        self._once = False  # hold again after the next change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stand-in-autoscaler", daemon=True)
        self._last_value: float | None = None
        self._last_demand: float | None = None
        self._decided: float | None = None  # when the current scale-up began

    def hold(self) -> None:
        self._allowed.clear()

    def release(self, once: bool = False) -> None:
        self._once = once
        self._allowed.set()

    def happened(self, event: str) -> int:
        return sum(1 for _, what in self.events if what == event)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.up:
            self.server.stop()
            self.up = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _scrape(self) -> float | None:
        try:
            response = requests.get(self.metrics_url, timeout=5)
        except requests.RequestException:
            return None  # a missed scrape: KEDA keeps the replicas as they are
        return wanted_total(response.text) if response.ok else None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._step(time.monotonic())

    def _step(self, now: float) -> None:
        value = self._scrape()
        self.scrapes += 1
        if value is not None:
            # Prometheus' increase() reads a counter that went down as restarted from 0.
            rose = value > self._last_value if self._last_value is not None else value > 0
            if rose or (self._last_value is not None and 0 < value < self._last_value):
                self._last_demand = now
                self.events.append((now, "demand"))
            self._last_value = value
        if not self._allowed.is_set():
            return  # held: the test decides when the replicas may change, so no step depends on its speed
        active = self._last_demand is not None and now - self._last_demand < self.idle_s
        if active and not self.up:
            if self._decided is None:
                self._decided = now
                self.events.append((now, "scaling up"))
            if now - self._decided >= self.wake_delay_s:
                self.server.start()  # blocks until it answers: the engine's own start counts too
                ready = time.monotonic()
                self.wakes.append(ready - self._decided)
                self.up, self._decided = True, None
                self.events.append((ready, "ready"))
                self._changed()
        elif not active and self.up:
            self.server.stop()
            self.up = False
            self.events.append((time.monotonic(), "scaled down"))
            self._changed()

    def _changed(self) -> None:
        if self._once:
            self._once = False
            self._allowed.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, help="the chat's /metrics URL (CHAT_METRICS_PORT)")
    parser.add_argument("--port", type=int, default=free_port(), help="where the model server listens")
    parser.add_argument("--wake-delay-s", type=float, default=10.0)
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--fake", action="store_true", help="the vLLM-shaped fake instead of llama.cpp")
    args = parser.parse_args()
    server = ModelServerProcess.fake(args.port) if args.fake else llama_server(args.port)
    print(f"model server (when awake) on http://127.0.0.1:{args.port}/v1; Ctrl-C stops", flush=True)
    with StandInAutoscaler(args.metrics, server, wake_delay_s=args.wake_delay_s, idle_s=args.idle_s) as scaler:
        seen = 0
        try:
            while True:
                time.sleep(0.5)
                for at, what in scaler.events[seen:]:
                    print(f"{at:12.1f}  {what}", flush=True)
                seen = len(scaler.events)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
