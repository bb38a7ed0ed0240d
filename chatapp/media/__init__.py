"""Image storage: a local folder beside the SQLite history, or a Cloud Storage bucket (`CHAT_MEDIA_BUCKET`)."""

from __future__ import annotations

from chatapp.media.base import MediaError, MediaNotFound, MediaStore
from chatapp.settings import Settings

__all__ = ["MediaError", "MediaNotFound", "MediaStore", "open_media"]


def open_media(settings: Settings) -> MediaStore:
    if settings.media_bucket:
        from chatapp.media.gcs import GcsMediaStore

        return GcsMediaStore(settings.media_bucket)
    from chatapp.media.local import LocalMediaStore, folder_beside

    return LocalMediaStore(folder_beside(settings.sqlite_path))
