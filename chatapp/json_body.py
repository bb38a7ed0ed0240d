"""Sending images to a model without copies of the whole turn: a JSON request body written as it is sent.

A request carrying 5 images of 10 MB, built as one JSON text, held each image three more times (its base64
string, the JSON text, the encoded body) for as long as the reply streamed: ~250 MB per turn, and 8 such turns
at once passed the pod's 2 GiB. `JsonBody` writes the same bytes piece by piece while requests sends them, so a
turn holds the images' bytes once plus one piece of base64 (`CHUNK`).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHUNK = 3 * 64 * 1024  # raw bytes per base64 piece (a multiple of 3: pieces join without padding)


@dataclass(frozen=True)
class DataUrl:
    """A `data:` URL of image bytes, base64-encoded only while it is sent (`JsonBody`)."""

    mime_type: str
    data: bytes

    def __len__(self) -> int:
        return len(self._prefix()) + 4 * ((len(self.data) + 2) // 3)

    def _prefix(self) -> bytes:
        return f"data:{self.mime_type};base64,".encode("ascii")

    def pieces(self) -> Iterator[bytes]:
        yield self._prefix()
        view = memoryview(self.data)
        for start in range(0, len(view), CHUNK):
            yield base64.b64encode(view[start : start + CHUNK])


class JsonBody:
    """A JSON request body whose `DataUrl` values are encoded as it is sent: iterable (requests sends it piece
    by piece) and sized (so it goes with a Content-Length, not chunked)."""

    def __init__(self, value: Any) -> None:
        urls: list[DataUrl] = []
        # Where each image goes: a string no text can hold (random per body; json.dumps escapes the NULs).
        mark = f"\x00{uuid.uuid4().hex}\x00"

        def placeholder(obj: Any) -> str:
            if not isinstance(obj, DataUrl):
                raise TypeError(f"{type(obj).__name__} is not JSON serializable")
            urls.append(obj)
            return mark

        text = json.dumps(value, default=placeholder, allow_nan=False).encode()
        quoted = json.dumps(mark).encode()
        self._texts = text.split(quoted)
        self._urls = urls
        self._length = len(text) - len(urls) * len(quoted) + sum(len(u) + 2 for u in urls)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        yield self._texts[0]
        for url, text in zip(self._urls, self._texts[1:], strict=True):
            yield b'"'
            yield from url.pieces()
            yield b'"'
            yield text
