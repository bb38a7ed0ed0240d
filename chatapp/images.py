"""What an image attached to a message may be: its type read from its first bytes, its size, how many.

The name and the browser's declared type prove nothing (a renamed HTML page is still HTML), so the type is
taken from the content's magic bytes alone and anything else is refused with a sentence for the person.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from chatapp import defaults
from chatapp.inputs import InputError

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGES_PER_MESSAGE = defaults.IMAGES_PER_MESSAGE
ALLOWED = "PNG, JPEG, WebP or GIF"


def sniff(data: bytes) -> str | None:
    """The image MIME type the bytes start with, or None for anything that is not PNG, JPEG, WebP or GIF."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Upload:
    """One checked image: its bytes and the type they really are."""

    data: bytes = b""
    mime_type: str = ""


def check_image(data: bytes, name: str = "the image") -> Upload:
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(f"{name} is {len(data) / 1e6:.1f} MB; an image may be at most {MAX_IMAGE_BYTES // 2**20} MB.")
    if not data:
        raise InputError(f"{name} is empty.")
    mime = sniff(data)
    if mime is None:
        raise InputError(f"{name} is not a {ALLOWED} image (judged by its content, not its name).")
    return Upload(data, mime)


def read_images(paths: Sequence[str]) -> list[Upload]:
    """Read and check the files of one message (already known to be the caller's uploads)."""
    if len(paths) > MAX_IMAGES_PER_MESSAGE:
        raise InputError(f"A message may carry at most {MAX_IMAGES_PER_MESSAGE} images; this one has {len(paths)}.")
    uploads = []
    for path in paths:
        name = repr(os.path.basename(path))[:80]
        try:
            size = os.path.getsize(path)
            if size > MAX_IMAGE_BYTES:  # refuse before reading it all
                raise InputError(
                    f"{name} is {size / 1e6:.1f} MB; an image may be at most {MAX_IMAGE_BYTES // 2**20} MB."
                )
            with open(path, "rb") as file:
                data = file.read(MAX_IMAGE_BYTES + 1)
        except OSError:
            raise InputError(f"{name} is no longer on the server (uploads expire): attach it again.") from None
        uploads.append(check_image(data, name))
    return uploads
