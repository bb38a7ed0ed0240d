"""Which models are reachable right now, and whether their servers still know the configured ids, checked in
the background from start-up on.

One thread polls every model and every page reads the cached answer, so a hundred open tabs cost the model
servers one probe per interval, not a hundred. A model's `check` also asks its provider whether the configured
id exists, so a retired id shows in the model list ("retired or unknown model id …: set …") and in the log
before anyone sends a message. Since when a model has been unavailable is exported on /metrics
(`chat_model_unavailable_since_seconds`), which `python -m chatapp.doctor` reads.

A self-hosted server that scales to zero (chatapp.models.waking) is listed as asleep, waking up (asked N s ago;
usually ready in about M min) or ready. While it is waking, it is checked every WAKING_CHECK_S instead: the first
healthy check ends the wake-up (and its measurement), and Auto sends the next message to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from prometheus_client import Gauge

from chatapp.models.base import ChatModel
from chatapp.models.waking import READY, WAKING, tracker_of

log = logging.getLogger(__name__)

# How often a waking server is checked: how late after it is ready the chat notices, and how much a measured
# wake-up can overstate it.
WAKING_CHECK_S = 2.0
# The status thread's heartbeat: how soon it notices that a turn started a wake-up.
_SLICE_S = 0.25

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
            checked = time.monotonic()
            while not self._stop.wait(_SLICE_S):
                waited = time.monotonic() - checked
                if waited >= self._interval_s or (waited >= WAKING_CHECK_S and self._waking()):
                    break

    def _waking(self) -> bool:
        return any((t := tracker_of(m)) is not None and t.state == WAKING for m in self._models.values())

    def markdown(self) -> str:
        lines = []
        for label, reason in self.snapshot().items():
            tracker = tracker_of(self._models.get(label))
            wake = tracker.status_line() if tracker is not None else None
            if wake is not None:  # asleep or waking, said as such (the tracker may know better than the cache)
                lines.append(f"- {wake}")
            elif reason is None or (tracker is not None and tracker.state == READY):
                lines.append(f"- 🟢 **{label}**" + (": ready" if tracker is not None else ""))
            else:
                lines.append(f"- 🔴 **{label}**: {reason}")
        return "\n".join(lines)
