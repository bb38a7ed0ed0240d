"""Graceful shutdown: what a replica does between SIGTERM and exit, and the one source of its time budget.

Kubernetes sends SIGTERM on every rolling update and scale-in, then SIGKILL after the pod's grace period.
Between the two the chat:

1. fails `/readyz` at once, so the load balancer stops sending it new connections, and refuses new turns
   (the message is kept for a reload, as any failed message is);
2. lets replies in flight stream for up to REPLY_BUDGET_S; a reply still running then is cut short and saved
   with a note saying why (the person's message with it), or kept as a failed message when no text came yet;
3. only then lets uvicorn close its connections, waiting at most CONNECTIONS_S for them: by now nothing is
   streaming, so an idle open page cannot hold shutdown for longer than that;
4. makes a last attempt (SAVE_S) to store turns still queued because the store was unreachable.

The stack cannot import the chat: stack/kube.py repeats GRACE_S as CHAT_GRACE_S, and
tests/infra/test_kubernetes.py keeps them equal.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

REPLY_BUDGET_S = 20.0  # replies in flight may go on this long after SIGTERM
CUT_SAVE_S = 5.0  # for the cut replies to reach their next chunk and be saved
CONNECTIONS_S = 3.0  # uvicorn's timeout_graceful_shutdown, once no reply streams any more
SAVE_S = 10.0  # the last attempt to save turns queued while the store was unreachable
MARGIN_S = 5.0  # process start-up of the signal, interpreter exit
# terminationGracePeriodSeconds: SIGKILL must not come before all of the above.
GRACE_S = math.ceil(REPLY_BUDGET_S + CUT_SAVE_S + CONNECTIONS_S + SAVE_S + MARGIN_S)

CUT_NOTE = "Cut short: the server restarted before this reply finished. Send again to continue."
REFUSED_NOTE = "This server is restarting, so your message was not sent. Send it again in a moment."


class Drain:
    """Shared by the server (which starts it on SIGTERM) and the chat service (which obeys it)."""

    def __init__(self, reply_budget_s: float = REPLY_BUDGET_S) -> None:
        self.reply_budget_s = reply_budget_s
        self._started: float | None = None
        self._active = 0
        self._idle = threading.Condition()

    @property
    def draining(self) -> bool:
        return self._started is not None

    def begin(self) -> bool:
        """Start draining; False when it had already started (a second signal)."""
        with self._idle:
            if self._started is not None:
                return False
            self._started = time.monotonic()
            return True

    def cut_due(self) -> bool:
        """True once replies still in flight must end (and be saved) for the process to exit in time."""
        started = self._started
        return started is not None and time.monotonic() >= started + self.reply_budget_s

    @contextlib.contextmanager
    def reply(self) -> Iterator[None]:
        """Count a reply in flight for as long as it runs (its turn saved)."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until no reply is in flight, at most `timeout_s`; True when none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout_s)
