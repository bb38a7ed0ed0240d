"""until_stopped: the wait for a model's first chunk, given up on Stop (real threads, a stream gated by events)."""

import logging
import threading
import time

import pytest

from chatapp.first_chunk import until_stopped

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

POLL_S = 0.01


class GatedStream:
    """A model stream that sends an empty role chunk, then waits for `release` before its text; it records what
    was read of it and whether it was closed, and from which thread."""

    def __init__(self, chunks=("Hel", "lo"), error=None):
        self.release = threading.Event()
        self.read, self.closed = [], threading.Event()
        self.chunks, self.error = chunks, error
        self.generator = self._generate()

    def _generate(self):
        try:
            yield ""  # the role chunk: shows nothing
            self.read.append("")
            assert self.release.wait(10), "never released"
            if self.error is not None:
                raise self.error
            for chunk in self.chunks:
                self.read.append(chunk)
                yield chunk
        finally:
            self.closed.set()


def shows(chunk: str) -> bool:
    return bool(chunk)


def test_every_chunk_passes_through_in_order_and_the_stream_is_closed_with_the_reply():
    stream = GatedStream(chunks=("Hel", "lo", "!"))
    stream.release.set()
    reply = until_stopped(stream.generator, lambda: False, shows, POLL_S)
    assert list(reply) == ["", "Hel", "lo", "!"]
    assert stream.closed.is_set()


def test_closing_the_reply_after_its_first_chunk_closes_the_stream_at_once():
    stream = GatedStream(chunks=["x"] * 100)
    stream.release.set()
    reply = until_stopped(stream.generator, lambda: False, shows, POLL_S)
    assert [next(reply) for _ in range(3)] == ["", "x", "x"]
    reply.close()
    assert stream.closed.is_set() and stream.generator.gi_frame is None
    assert len(stream.read) < 100


def test_a_stop_before_the_first_chunk_ends_the_reply_at_once_and_the_stream_closes_when_it_answers(caplog):
    caplog.set_level(logging.ERROR, logger="chatapp.first_chunk")
    stream = GatedStream()
    stopped = threading.Event()
    reply = until_stopped(stream.generator, stopped.is_set, shows, POLL_S)
    results = []
    reader = threading.Thread(target=lambda: results.append(list(reply)))
    reader.start()
    time.sleep(10 * POLL_S)
    assert reader.is_alive(), "the reply ended before its first chunk or a Stop"
    stopped.set()
    reader.join(5)
    assert not reader.is_alive(), "Stop did not end a reply waiting for its first chunk"
    assert results == [[]], "a stopped reply handed on chunks"
    assert not stream.closed.is_set()  # the read is still waiting for the model
    stream.release.set()  # the model's first text comes: the abandoned read closes the stream, reading no more
    assert stream.closed.wait(5), "the abandoned stream was never closed"
    assert stream.read == ["", "Hel"]
    assert not caplog.records, "closing the stream failed (closed while the read was still in it?)"


def test_a_stop_after_the_first_chunk_is_left_to_the_reply():
    stream = GatedStream(chunks=("Hel", "lo"))
    stream.release.set()
    stopped = threading.Event()
    reply = until_stopped(stream.generator, stopped.is_set, shows, POLL_S)
    assert next(reply) == ""
    stopped.set()  # the reply's own loop sees it between chunks: this only waits for the first
    assert list(reply) == ["Hel", "lo"]


def test_a_failure_before_the_first_chunk_is_raised_in_the_reply():
    stream = GatedStream(error=ConnectionResetError("reset by peer"))
    stream.release.set()
    with pytest.raises(ConnectionResetError, match="reset by peer"):
        list(until_stopped(stream.generator, lambda: False, shows, POLL_S))


def test_a_stream_that_ends_without_text_ends_the_reply():
    stream = GatedStream(chunks=())
    stream.release.set()
    assert list(until_stopped(stream.generator, lambda: False, shows, POLL_S)) == [""]
    assert stream.closed.is_set()
