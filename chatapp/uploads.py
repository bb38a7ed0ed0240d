"""Whose upload is which, and how much each caller may keep on the server's disk.

Gradio's upload route answers with the server paths of the files it wrote (`<cache>/<sha256>/<name>`), and
`/gradio_api/file=<path>` serves, and every event accepts, any path in that folder, whoever uploaded it. So the
front door (`chatapp.web.Guard`) records which caller received which path and answers the caller an opaque
handle instead (`<random>/<file name>`: the path is never sent). Gradio's page and gradio_client put that
string where the path goes (the file's `path`, and `/gradio_api/file=<handle>` to preview it), and the front
door maps the caller's own handles back to paths before Gradio sees the request; anyone else's handle means
nothing. The chat takes a path as a message's image only from its uploader. A path is consumed once: the image
is copied to the media store and the temporary file is deleted.

Each upload request is written into a folder of its own (`own_folder`), deleted whole when the request fails
or is cut off (a client gone mid-body, a bad part): Gradio deletes its partial files only on its own parse
errors.

Each caller may hold at most `MAX_HELD_BYTES` of uploads not yet sent with a message and make at most
`UPLOADS_PER_MINUTE` upload requests a minute; an upload not used within `EXPIRE_S` is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatapp.gradio_compat import upload_folder
from chatapp.images import MAX_IMAGE_BYTES, MAX_IMAGES_PER_MESSAGE, sniff

REMEMBERED = 100_000  # paths kept (the oldest are forgotten and their files deleted)
# Two messages' worth of images (5 images of 10 MB each) waiting to be sent, per caller.
MAX_HELD_BYTES = 2 * MAX_IMAGES_PER_MESSAGE * MAX_IMAGE_BYTES
UPLOADS_PER_MINUTE = 20
EXPIRE_S = 3600.0  # an attached image not sent within the hour is deleted
INCOMING = "incoming-"  # the prefix of each upload request's own folder
HANDLE = re.compile(r"^[A-Za-z0-9_-]{24}/[^/]+$")  # what `UploadRegistry.add` answers for a path


@dataclass
class _Held:
    owners: set[str]
    size: int
    since: float
    handles: dict[str, str] = field(default_factory=dict)  # owner → the handle it was answered


class UploadRegistry:
    def __init__(
        self, capacity: int = REMEMBERED, max_held_bytes: int = MAX_HELD_BYTES, expire_s: float = EXPIRE_S
    ) -> None:
        self.capacity = capacity
        self.max_held_bytes = max_held_bytes
        self.expire_s = expire_s
        self._files: OrderedDict[str, _Held] = OrderedDict()
        self._held: dict[str, int] = {}  # caller → bytes of their uploads on disk
        self._paths: dict[str, tuple[str, str]] = {}  # handle → (its caller, the path)
        self._lock = threading.Lock()

    def room(self, owner: str) -> int:
        """Bytes `owner` may still upload."""
        self.expire()
        with self._lock:
            return self.max_held_bytes - self._held.get(owner, 0)

    def add(self, owner: str, paths: list[str]) -> list[str] | None:
        """Record `owner`'s new uploads and answer the handle of each path; None (and every new file deleted) if
        they take it over its limit."""
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
                handles = None
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
                handles = [self._handle(owner, path) for path in paths]
        _delete(doomed)
        return handles

    def _handle(self, owner: str, path: str) -> str:
        held = self._files[path]
        if owner not in held.handles:
            # Random, so it says nothing of the server and nobody can guess another's; the file name is the
            # uploader's own, kept because clients show it.
            held.handles[owner] = f"{secrets.token_urlsafe(18)}/{os.path.basename(path)}"
            self._paths[held.handles[owner]] = (owner, path)
        return held.handles[owner]

    def path_of(self, owner: str, handle: object) -> str | None:
        """The path behind one of `owner`'s handles; None for anyone else's handle, or a forgotten one."""
        with self._lock:
            found = self._paths.get(handle) if isinstance(handle, str) else None
            return found[1] if found is not None and found[0] == owner else None

    def resolve(self, owner: str, body: bytes) -> bytes:
        """An event's JSON body with the `path` of each file in it that is one of `owner`'s handles replaced by
        its path on the server. Someone else's (or a forgotten) handle becomes a path that holds nothing, so
        the chat answers it like an expired upload, and so does a URL; anything else is left as sent."""
        if b'"path"' not in body:
            return body
        try:
            data = json.loads(body)
        except ValueError:
            return body
        changed = False

        def walk(value: Any) -> Any:
            nonlocal changed
            if isinstance(value, list):
                return [walk(item) for item in value]
            if not isinstance(value, dict):
                return value
            out = {key: walk(item) for key, item in value.items()}
            handle = out.get("path")
            if isinstance(handle, str) and HANDLE.match(handle):
                out["path"] = self.path_of(owner, handle) or os.path.join(upload_folder(), "unknown", handle)
                changed = True
            elif isinstance(handle, str) and "://" in handle:
                # Gradio downloads a URL sent as a file's path before any handler runs (a fetch from the
                # server's network on a caller's behalf): a caller's files are only ever their own uploads.
                out["path"] = os.path.join(upload_folder(), "unknown", "not-an-upload")
                changed = True
            return out

        data = walk(data)
        return json.dumps(data).encode() if changed else body

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
            self._paths.pop(held.handles.pop(owner, ""), None)
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
        for handle in held.handles.values():
            self._paths.pop(handle, None)
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
        folder = os.path.dirname(path)
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # Gradio's per-file folder, once empty
        if os.path.basename(os.path.dirname(folder)).startswith(INCOMING):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(folder))  # the request's own folder, once empty


UploadFn = Callable[..., Awaitable[tuple[list[str], list[str], list[str]]]]


def own_folder(upload_fn: UploadFn) -> UploadFn:
    """Gradio's `upload_fn(request, upload_dir, ...)`, writing each request into a folder of its own inside
    `upload_dir` (still Gradio's upload folder, which events and `/file=` accept paths in). What a failed or cut
    off request wrote, its partial temporary files included, goes with that folder; so does anything a
    complete request wrote but does not answer (a part cut off before its end)."""

    async def upload(request: Any, upload_dir: str, *args: Any, **kwargs: Any) -> tuple[list, list, list]:
        folder = Path(upload_dir) / f"{INCOMING}{secrets.token_hex(8)}"
        try:
            output_files, files_to_copy, locations = await upload_fn(request, str(folder), *args, **kwargs)
        except BaseException:  # a client gone mid-body, a bad part, a cancelled task
            shutil.rmtree(folder, ignore_errors=True)
            raise
        answered = {os.path.realpath(path) for path in [*output_files, *files_to_copy, *locations]}
        for leftover in [p for p in folder.rglob("*") if p.is_file() and os.path.realpath(p) not in answered]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        return output_files, files_to_copy, locations

    return upload
