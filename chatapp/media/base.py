"""Where image bytes live: outside the conversation documents, one object per image.

Objects are named `<owner key>/<conversation id>/<image id>`. The owner key is a hash of the owner id, derived
by the server from the caller on every request, so a person can only ever name objects under their own key:
another person's image id, guessed or leaked, is simply not found there. Deleting a conversation deletes its
prefix.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Protocol

from chatapp.conversation import ImageRef

IMAGE_ID = re.compile(r"^[0-9a-f]{32}$")
CONVERSATION_ID = re.compile(r"^[0-9a-f]{32}$")


class MediaError(Exception):
    """The media store failed (unreachable, refused); the message is written for a log and a person."""


class MediaNotFound(MediaError):
    """No such image for this owner and conversation (someone else's is reported the same way)."""


def owner_key(owner: str) -> str:
    """A fixed-length, path-safe name for an owner (owners hold ':' '@' and arbitrary user names)."""
    return hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def object_name(owner: str, conversation_id: str, image_id: str) -> str:
    if not CONVERSATION_ID.match(conversation_id) or not IMAGE_ID.match(image_id):
        raise MediaNotFound("not an image of this chat")
    return f"{owner_key(owner)}/{conversation_id}/{image_id}"


def conversation_prefix(owner: str, conversation_id: str) -> str:
    if not CONVERSATION_ID.match(conversation_id):
        raise MediaNotFound("not a conversation of this chat")
    return f"{owner_key(owner)}/{conversation_id}/"


def new_image_id() -> str:
    return uuid.uuid4().hex


class MediaStore(Protocol):
    def put(self, owner: str, conversation_id: str, data: bytes, mime_type: str) -> ImageRef:
        """Store one checked image; return its reference. Raise MediaError."""
        ...

    def get(self, owner: str, conversation_id: str, image_id: str) -> bytes:
        """The image's bytes; MediaNotFound unless it is this owner's, in this conversation."""
        ...

    def delete(self, owner: str, conversation_id: str, image_ids: list[str]) -> None:
        """Delete these images (missing ones are fine)."""
        ...

    def delete_conversation(self, owner: str, conversation_id: str) -> None:
        """Delete every image of a conversation (none is fine)."""
        ...
