"""Whose upload is which: Gradio keeps uploads in one shared folder and serves or accepts any path in it.

Gradio's upload route answers with the server paths of the files it wrote (`<cache>/<sha256>/<name>`), and
`/gradio_api/file=<path>` serves, and every event accepts, any path in that folder, whoever uploaded it. So the
front door (`chatapp.web.Guard`) records which caller received which path, serves a path only back to that
caller, and the chat takes a path as a message's image only from that caller. A path is consumed once: the
image is copied to the media store and the temporary file is deleted.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict

REMEMBERED = 100_000  # paths kept (the oldest are forgotten; their files also expire from Gradio's cache)


class UploadRegistry:
    def __init__(self, capacity: int = REMEMBERED) -> None:
        self.capacity = capacity
        self._owners: OrderedDict[str, set[str]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, owner: str, paths: list[str]) -> None:
        with self._lock:
            for path in paths:
                # Gradio names an upload by its content's hash, so two people uploading the same file get the
                # same path: each of them owns it (each had the bytes already).
                self._owners.setdefault(path, set()).add(owner)
                self._owners.move_to_end(path)
            while len(self._owners) > self.capacity:
                self._owners.popitem(last=False)

    def owns(self, owner: str, path: object) -> bool:
        if not isinstance(path, str):
            return False
        with self._lock:
            return owner in self._owners.get(path, ())

    def consume(self, owner: str, path: str) -> None:
        """The caller is done with this upload: forget it and delete the file once nobody else holds it."""
        with self._lock:
            owners = self._owners.get(path)
            if owners is None:
                return
            owners.discard(owner)
            if owners:
                return
            del self._owners[path]
        with contextlib.suppress(OSError):
            os.remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # Gradio's per-file folder, once empty
