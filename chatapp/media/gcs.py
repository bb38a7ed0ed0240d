"""Images in a Cloud Storage bucket (`CHAT_MEDIA_BUCKET`), with the chat's own identity (Workload Identity).

The stack grants that identity object access on this bucket only. `STORAGE_EMULATOR_HOST` (honoured by
google-cloud-storage itself) points the client at a fake for tests.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as api_errors
from google.cloud import storage

from chatapp.conversation import ImageRef
from chatapp.media.base import MediaError, MediaNotFound, conversation_prefix, new_image_id, object_name

TIMEOUT_S = 30.0
# Each object is written once with its own new name and never rewritten, so a retried upload is harmless.
_ERRORS = (api_errors.GoogleAPIError, OSError)


class GcsMediaStore:
    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket_name = bucket
        self._client = client
        self._bucket: Any = None

    def __repr__(self) -> str:
        return f"GcsMediaStore({self.bucket_name!r})"

    def _b(self) -> Any:
        if self._bucket is None:
            try:
                client = self._client or storage.Client()
            except Exception as exc:  # no credentials or project: say so in the person's error, not a trace
                raise MediaError(f"cannot reach Cloud Storage bucket {self.bucket_name}: {exc}") from exc
            self._bucket = client.bucket(self.bucket_name)
        return self._bucket

    def put(self, owner: str, conversation_id: str, data: bytes, mime_type: str) -> ImageRef:
        image_id = new_image_id()
        blob = self._b().blob(object_name(owner, conversation_id, image_id))
        try:
            # if_generation_match=0: create only; a name is never reused, so this also makes the retry safe.
            blob.upload_from_string(data, content_type=mime_type, if_generation_match=0, timeout=TIMEOUT_S)
        except _ERRORS as exc:
            raise MediaError(f"could not store the image in bucket {self.bucket_name}: {exc}") from exc
        return ImageRef(image_id, mime_type, len(data))

    def get(self, owner: str, conversation_id: str, image_id: str) -> bytes:
        blob = self._b().blob(object_name(owner, conversation_id, image_id))
        try:
            return blob.download_as_bytes(timeout=TIMEOUT_S)
        except api_errors.NotFound:
            raise MediaNotFound("no such image") from None
        except _ERRORS as exc:
            raise MediaError(f"could not read an image from bucket {self.bucket_name}: {exc}") from exc

    def delete(self, owner: str, conversation_id: str, image_ids: list[str]) -> None:
        for image_id in image_ids:
            try:
                self._b().blob(object_name(owner, conversation_id, image_id)).delete(timeout=TIMEOUT_S)
            except (MediaNotFound, api_errors.NotFound):
                continue
            except _ERRORS as exc:
                raise MediaError(f"could not delete an image in bucket {self.bucket_name}: {exc}") from exc

    def delete_conversation(self, owner: str, conversation_id: str) -> None:
        prefix = conversation_prefix(owner, conversation_id)
        try:
            for blob in self._b().list_blobs(prefix=prefix, timeout=TIMEOUT_S):
                try:
                    blob.delete(timeout=TIMEOUT_S)
                except api_errors.NotFound:
                    continue
        except _ERRORS as exc:
            raise MediaError(f"could not delete images in bucket {self.bucket_name}: {exc}") from exc
