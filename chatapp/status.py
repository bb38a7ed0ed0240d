"""Which models are reachable right now, and whether their servers still know the configured ids, checked in
the background from start-up on.

One thread polls every model and every page reads the cached answer, so a hundred open tabs cost the model
servers one probe per interval, not a hundred. A model's `check` also asks its provider whether the configured
id exists, so a retired id shows in the model list ("retired or unknown model id …: set …") and in the log
before anyone sends a message. Since when a model has been unavailable is exported on /metrics
(`chat_model_unavailable_since_seconds`), which `python -m chatapp.doctor` reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from prometheus_client import Gauge

from chatapp.models.base import ChatModel

log = logging.getLogger(__name__)

UNAVAILABLE_SINCE = Gauge(
    "chat_model_unavailable_since_seconds",
    "Unix time since when the status check has found the model unavailable; 0 while it is available.",
    ["model"],
)


class ModelStatus:
    def __init__(self, models: Mapping[str, ChatModel], interval_s: float = 10.0) -> None:
        self._models = models
        self._interval_s = interval_s
        self._status: dict[str, str | None] = {label: "not checked yet" for label in models}
        self._since: dict[str, float | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> dict[str, str | None]:
        for label, model in self._models.items():
            try:
                reason = model.check()
            except Exception as exc:  # a failing probe means "unreachable", never a crash
                log.warning("status check of %s failed: %s", label, exc)
                reason = f"check failed ({type(exc).__name__})"
            with self._lock:
                before = self._status.get(label)
                self._status[label] = reason
                if reason is None:
                    self._since[label] = None
                elif self._since.get(label) is None:
                    self._since[label] = time.time()
                since = self._since[label]
            UNAVAILABLE_SINCE.labels(label).set(since or 0)
            if reason != before and reason is not None:
                log.warning("model %s: %s", label, reason)
        return self.snapshot()

    def unavailable_since(self, label: str) -> float | None:
        """Unix time of the first check that found `label` unavailable, in its current spell; None if available."""
        with self._lock:
            return self._since.get(label)

    def snapshot(self) -> dict[str, str | None]:
        """Label → None when reachable, else the reason it is not."""
        with self._lock:
            return dict(self._status)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-status", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._interval_s)

    def markdown(self) -> str:
        lines = []
        for label, reason in self.snapshot().items():
            lines.append(f"- 🟢 **{label}**" if reason is None else f"- 🔴 **{label}**: {reason}")
        return "\n".join(lines)
