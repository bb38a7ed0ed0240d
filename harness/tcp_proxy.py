"""A small TCP proxy on 127.0.0.1 standing in for the load balancer in front of several chat replicas.

    with SwitchProxy(target_port) as proxy:
        proxy.url                 "http://127.0.0.1:PORT"
        proxy.switch(other_port)  new connections go to the other replica (a drained or lost backend);
                                  connections already open stay where they are, as a load balancer's do
        proxy.cut()               close every open connection (the backend's node is gone)
        proxy.hold() / release()  answers stop flowing back until released (a backend that hangs);
                                  proxy.sent counts the bytes clients sent, to see a request arrive

Plain bytes both ways, so HTTP keep-alive, SSE streams and WebSockets pass unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class SwitchProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self._flowing = threading.Event()
        self._flowing.set()
        self.sent = 0
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def switch(self, target_port: int) -> None:
        self.target_port = target_port

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def __enter__(self) -> SwitchProxy:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:  # the backend is gone: the client sees its connection closed, as behind a real LB
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            ends = threading.Semaphore(0)  # the second direction to end closes both sockets
            for source, sink, back in ((client, upstream, False), (upstream, client, True)):
                args = (source, sink, ends, back)
                threading.Thread(target=self._pump, args=args, name="proxy-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, ends: threading.Semaphore, back: bool) -> None:
        try:
            while data := source.recv(65536):
                if back:
                    self._flowing.wait()
                else:
                    self.sent += len(data)
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)  # pass the half-close on; the other direction may still be busy
        if ends.acquire(blocking=False):  # the other direction ended first: this connection is done
            with self._lock:
                self._open -= {source, sink}
            source.close()
            sink.close()
        else:
            ends.release()
