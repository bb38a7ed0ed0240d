"""Waiting for a model's first chunk, given up as soon as Stop is pressed.

A model may take seconds before its first token (a long prompt to read, a busy server, thinking it does not
stream), and a reply sees Stop only between chunks. So the page's reply waits for the first chunk worth showing
in a thread of its own and checks Stop meanwhile: pressed before that chunk, the reply ends at once with nothing
to store, and the abandoned read closes the model's stream when it returns (closing is what tells the server to
stop generating).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

STOP_POLL_S = 0.2  # how often Stop is checked while the first chunk is awaited


class _FirstWait:
    """Reads `chunks` up to the first chunk that `shows`, in its own thread."""

    def __init__(self, chunks: Iterator[str], shows: Callable[[str], bool]) -> None:
        self._chunks = chunks
        self._shows = shows
        self._lock = threading.Lock()  # orders `abandon` against the read's end
        self._abandoned = False
        self.done = threading.Event()
        self.read: list[str] = []  # the chunks read, the one that shows last
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            for chunk in self._chunks:
                self.read.append(chunk)
                if self._shows(chunk):
                    break
        except Exception as exc:  # handed to the reply, which raises it as its own
            self.error = exc
        with self._lock:
            self.done.set()
            abandoned = self._abandoned
        if abandoned:
            _close(self._chunks)

    def abandon(self) -> bool:
        """Leave the read to close the stream when it returns; False if it already returned."""
        with self._lock:
            if self.done.is_set():
                return False
            self._abandoned = True
            return True


def until_stopped(
    chunks: Iterator[str], stop: Callable[[], bool], shows: Callable[[str], bool], poll_s: float = STOP_POLL_S
) -> Iterator[str]:
    """`chunks`, unless `stop()` turns true before the first one that `shows`: then nothing more. Closing this
    closes `chunks`, at once, or when the abandoned wait for the first chunk returns."""
    wait = _FirstWait(chunks, shows)
    threading.Thread(target=wait.run, name="first-chunk", daemon=True).start()
    abandoned = False
    try:
        while not wait.done.wait(poll_s):
            if stop() and wait.abandon():
                abandoned = True
                return
        if wait.error is not None:
            raise wait.error
        yield from wait.read
        yield from chunks
    finally:
        if not abandoned:
            _close(chunks)


def _close(chunks: Iterator[str]) -> None:
    close = getattr(chunks, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # a stream that fails to close must not fail the reply that abandoned it
        log.exception("closing a model stream failed")
