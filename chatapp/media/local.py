"""Images in a folder beside the SQLite history (`chat-history.sqlite3` → `chat-history.media/`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from chatapp.conversation import ImageRef
from chatapp.media.base import MediaError, MediaNotFound, conversation_prefix, new_image_id, object_name


def folder_beside(sqlite_path: str | Path) -> Path:
    path = Path(sqlite_path)
    return path.with_name(f"{path.stem}.media")


class LocalMediaStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalMediaStore({str(self.root)!r})"

    def put(self, owner: str, conversation_id: str, data: bytes, mime_type: str) -> ImageRef:
        image_id = new_image_id()
        target = self.root / object_name(owner, conversation_id, image_id)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Written under a temporary name and renamed: a crash never leaves half an image behind a reference.
            fd, staging = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(staging, target)
        except OSError as exc:
            raise MediaError(f"could not store the image in {self.root}: {exc.strerror or exc}") from exc
        return ImageRef(image_id, mime_type, len(data))

    def get(self, owner: str, conversation_id: str, image_id: str) -> bytes:
        try:
            return (self.root / object_name(owner, conversation_id, image_id)).read_bytes()
        except FileNotFoundError:
            raise MediaNotFound("no such image") from None
        except OSError as exc:
            raise MediaError(f"could not read an image from {self.root}: {exc.strerror or exc}") from exc

    def delete(self, owner: str, conversation_id: str, image_ids: list[str]) -> None:
        for image_id in image_ids:
            try:
                (self.root / object_name(owner, conversation_id, image_id)).unlink(missing_ok=True)
            except MediaNotFound:
                continue
            except OSError as exc:
                raise MediaError(f"could not delete an image in {self.root}: {exc.strerror or exc}") from exc

    def delete_conversation(self, owner: str, conversation_id: str) -> None:
        folder = self.root / conversation_prefix(owner, conversation_id)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise MediaError(f"could not delete images in {self.root}: {exc.strerror or exc}") from exc
