"""Plumbing shared by the fake model servers: a threaded HTTP/1.1 server that streams SSE in chunked encoding.

Thread-per-connection keeps 32+ concurrent streams from slowing each other (each stream mostly sleeps
between tokens), and chunked encoding is what uvicorn (vLLM) and the Google front ends send, so the real
clients read the bytes exactly as they would in production, including a connection cut mid-body.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class ClientGone(Exception):
    """The client closed the connection while we were streaming to it."""


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # benchmarks open dozens of connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up on idle keep-alive connections is normal here (stop, timeouts); stay quiet.
        if isinstance(sys.exc_info()[1], (ConnectionError, ClientGone, TimeoutError)):
            return
        super().handle_error(request, client_address)


class SSEHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like the real servers

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the recorded requests instead of stderr noise

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def client_gone(self) -> bool:
        """True when the peer has closed its end (readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def write_chunk(self, data: bytes) -> None:
        """Send one HTTP chunk; raise ClientGone when the client has disconnected."""
        if self.client_gone():
            raise ClientGone
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as exc:  # BrokenPipe / ConnectionReset
            raise ClientGone from exc

    def end_chunks(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as exc:
            raise ClientGone from exc

    def cut_connection(self) -> None:
        """Drop the TCP connection without finishing the chunked body, as a crashed pod or proxy would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def wait_or_gone(handler: SSEHandler, seconds: float, stopping: threading.Event) -> None:
    """Sleep `seconds`; raise ClientGone early if the client leaves or the server is stopping."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if stopping.wait(min(0.05, remaining)) or handler.client_gone():
            raise ClientGone


class FakeServer:
    """What every fake shares: a threaded server on 127.0.0.1, a log of requests, and per-request modes.

    `mode` serves every later request; `queue(...)` serves the next ones with other modes, then `mode` again.
    Subclasses set MODES and hand over the handler class their server uses.
    """

    MODES: tuple[str, ...] = ()

    def __init__(self, handler: type[SSEHandler], *, port: int = 0, mode: str = "normal") -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {self.MODES}")
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0  # streams the client abandoned before the end
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()  # releases hanging and paced streams on stop
        self._httpd = FakeHTTPServer(("127.0.0.1", port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *modes: str) -> None:
        """Serve the next requests with these modes, in order, then fall back to `mode`."""
        for mode in modes:
            if mode not in self.MODES:
                raise ValueError(f"unknown mode {mode!r}; one of {self.MODES}")
        with self._lock:
            self._queue.extend(modes)

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        """Wait until at least one stream was abandoned by the client; True if it happened."""
        with self._changed:
            return self._changed.wait_for(lambda: self.disconnects > 0, timeout)

    # -- used by the handlers ------------------------------------------------------------------------------
    def _queued_mode(self) -> str | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def _record(self, path: str, body: Any, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append({"path": path, "body": body, "headers": headers, "time": time.time()})

    def _count(self, counter: str) -> None:
        with self._changed:
            setattr(self, counter, getattr(self, counter) + 1)
            self._changed.notify_all()
