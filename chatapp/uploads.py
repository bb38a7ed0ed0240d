"""Whose upload is which, and how much each caller may keep on the server's disk.

Gradio's upload route answers with the server paths of the files it wrote (`<cache>/<sha256>/<name>`), and
`/gradio_api/file=<path>` serves, and every event accepts, any path in that folder, whoever uploaded it. So the
front door (`chatapp.web.Guard`) records which caller received which path, serves a path only back to that
caller, and the chat takes a path as a message's image only from that caller. A path is consumed once: the
image is copied to the media store and the temporary file is deleted.

Each caller may hold at most `MAX_HELD_BYTES` of uploads not yet sent with a message and make at most
`UPLOADS_PER_MINUTE` upload requests a minute; an upload not used within `EXPIRE_S` is deleted.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from chatapp.images import MAX_IMAGE_BYTES, MAX_IMAGES_PER_MESSAGE, sniff

REMEMBERED = 100_000  # paths kept (the oldest are forgotten and their files deleted)
# Two messages' worth of images (5 images of 10 MB each) waiting to be sent, per caller.
MAX_HELD_BYTES = 2 * MAX_IMAGES_PER_MESSAGE * MAX_IMAGE_BYTES
UPLOADS_PER_MINUTE = 20
EXPIRE_S = 3600.0  # an attached image not sent within the hour is deleted


@dataclass
class _Held:
    owners: set[str]
    size: int
    since: float


class UploadRegistry:
    def __init__(
        self, capacity: int = REMEMBERED, max_held_bytes: int = MAX_HELD_BYTES, expire_s: float = EXPIRE_S
    ) -> None:
        self.capacity = capacity
        self.max_held_bytes = max_held_bytes
        self.expire_s = expire_s
        self._files: OrderedDict[str, _Held] = OrderedDict()
        self._held: dict[str, int] = {}  # caller → bytes of their uploads on disk
        self._lock = threading.Lock()

    def room(self, owner: str) -> int:
        """Bytes `owner` may still upload."""
        self.expire()
        with self._lock:
            return self.max_held_bytes - self._held.get(owner, 0)

    def add(self, owner: str, paths: list[str]) -> bool:
        """Record `owner`'s new uploads; False (and every new file deleted) if they take it over its limit."""
        sizes = {}
        for path in paths:
            try:
                sizes[path] = os.path.getsize(path)
            except OSError:
                sizes[path] = 0
        doomed: list[str] = []
        with self._lock:
            new = {p: s for p, s in sizes.items() if owner not in self._files.get(p, _Held(set(), 0, 0)).owners}
            if self._held.get(owner, 0) + sum(new.values()) > self.max_held_bytes:
                doomed = [p for p in new if p not in self._files]
                ok = False
            else:
                now = time.monotonic()
                for path, size in new.items():
                    # Gradio names an upload by its content's hash, so two people uploading the same file get the
                    # same path: each of them owns it (each had the bytes already), each is charged for it.
                    held = self._files.setdefault(path, _Held(set(), size, now))
                    held.owners.add(owner)
                    held.since = now
                    self._files.move_to_end(path)
                    self._held[owner] = self._held.get(owner, 0) + size
                while len(self._files) > self.capacity:
                    doomed.append(self._drop_oldest())
                ok = True
        _delete(doomed)
        return ok

    def owns(self, owner: str, path: object) -> bool:
        if not isinstance(path, str):
            return False
        with self._lock:
            held = self._files.get(path)
            return held is not None and owner in held.owners

    def consume(self, owner: str, path: str) -> None:
        """The caller is done with this upload: forget it and delete the file once nobody else holds it."""
        with self._lock:
            held = self._files.get(path)
            if held is None or owner not in held.owners:
                return
            held.owners.discard(owner)
            self._release(owner, held.size)
            if held.owners:
                return
            del self._files[path]
        _delete([path])

    def expire(self, now: float | None = None) -> None:
        """Delete the uploads nobody sent within `expire_s` (the oldest come first)."""
        now = time.monotonic() if now is None else now
        doomed = []
        with self._lock:
            while self._files:
                held = next(iter(self._files.values()))
                if now - held.since < self.expire_s:
                    break
                doomed.append(self._drop_oldest())
        _delete(doomed)

    def _drop_oldest(self) -> str:
        path, held = self._files.popitem(last=False)
        for owner in held.owners:
            self._release(owner, held.size)
        return path

    def _release(self, owner: str, size: int) -> None:
        left = self._held.get(owner, 0) - size
        if left > 0:
            self._held[owner] = left
        else:
            self._held.pop(owner, None)


def all_images(paths: list[str], fresh: list[str]) -> bool:
    """Whether every uploaded file starts like an accepted image; if not, the new ones are deleted at once."""
    ok = True
    for path in paths:
        try:
            with open(path, "rb") as file:
                ok = ok and sniff(file.read(16)) is not None
        except OSError:
            ok = False
    if not ok:
        for path in fresh:
            with contextlib.suppress(OSError):
                os.remove(path)
    return ok


def _delete(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # Gradio's per-file folder, once empty
