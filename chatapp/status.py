"""Which models are reachable right now, checked in the background.

One thread polls every model and every page reads the cached answer, so a hundred open tabs cost the model
servers one probe per interval, not a hundred.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from chatapp.models.base import ChatModel

log = logging.getLogger(__name__)


class ModelStatus:
    def __init__(self, models: Mapping[str, ChatModel], interval_s: float = 10.0) -> None:
        self._models = models
        self._interval_s = interval_s
        self._status: dict[str, str | None] = {label: "not checked yet" for label in models}
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
                self._status[label] = reason
        return self.snapshot()

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
