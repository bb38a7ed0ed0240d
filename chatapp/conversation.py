"""The one message type every part of the chat shares, and the rules for turning history into a prompt.

Gemma's chat template accepts at most one leading system message followed by strictly alternating user and
assistant turns, and it raises on anything else. A conversation may hold a user message whose reply failed
(joined with the next one) or messages emptied of text, so `build_prompt` is where the prompt is made valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from chatapp import defaults

Role = Literal["system", "user", "assistant"]

# The most images one prompt carries (vLLM's `--limit-mm-per-prompt`): older ones are named, not sent.
PROMPT_IMAGES = defaults.IMAGES_PER_MESSAGE


@dataclass(frozen=True)
class ImageRef:
    """An image attached to a user message: stored in the media store, referenced from the message.

    `data` is filled in only while a prompt is sent to a model (it never reaches a history document)."""

    id: str
    mime_type: str
    size: int
    data: bytes | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "mime_type": self.mime_type, "size": self.size}

    @classmethod
    def from_dict(cls, value: Any) -> ImageRef | None:
        """The reference a store kept, or None for anything malformed (never trusted blindly)."""
        if not isinstance(value, dict):
            return None
        image_id, mime, size = value.get("id"), value.get("mime_type"), value.get("size")
        if not (isinstance(image_id, str) and isinstance(mime, str) and isinstance(size, int)):
            return None
        return cls(image_id, mime, size)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    # Which model wrote an assistant message (its label); None for user and system messages.
    model: str | None = None
    images: tuple[ImageRef, ...] = ()


def alternate(messages: Iterable[Message]) -> list[Message]:
    """Make user/assistant turns strictly alternate, starting with a user turn.

    Consecutive messages of one role are joined (a user message whose reply failed followed by a new one
    becomes one user turn); assistant messages before the first user message are dropped.
    """
    turns: list[Message] = []
    for message in messages:
        if message.role == "system" or not (message.content.strip() or message.images):
            continue
        if not turns and message.role == "assistant":
            continue
        if turns and turns[-1].role == message.role:
            last = turns[-1]
            text = "\n\n".join(t for t in (last.content, message.content) if t)
            turns[-1] = Message(last.role, text, last.model, last.images + message.images)
        else:
            turns.append(message)
    return turns


def _size(messages: Sequence[Message]) -> int:
    return sum(len(m.content) for m in messages)


def keep_newest_images(messages: list[Message], limit: int = PROMPT_IMAGES) -> list[Message]:
    """Send at most `limit` images, the newest; an older one is replaced by a note, so the model knows a
    picture was there (and the person can attach it again)."""
    kept = 0
    out: list[Message] = []
    for message in reversed(messages):
        if message.images:
            room = max(0, limit - kept)
            keep = message.images[len(message.images) - room :] if room else ()
            kept += len(keep)
            dropped = len(message.images) - len(keep)
            if dropped:
                note = f"[{dropped} earlier image{'s' if dropped > 1 else ''} not shown again]"
                message = replace(message, content=f"{note}\n{message.content}".strip(), images=tuple(keep))
        out.append(message)
    return out[::-1]


def build_prompt(
    history: Iterable[Message],
    user_text: str,
    system_prompt: str = "",
    budget_chars: int = 24_000,
    images: tuple[ImageRef, ...] = (),
) -> list[Message]:
    """The messages to send: optional system prompt, alternating history, the new user message last.

    Oldest turns are dropped (a user/assistant pair at a time, so alternation holds) until the prompt fits
    `budget_chars`. The system prompt and the newest user message are never dropped, even when they alone
    exceed the budget; the model server then reports the overflow itself.
    """
    turns = alternate([*history, Message("user", user_text, images=images)])
    if not turns or turns[-1].role != "user":
        raise ValueError("the newest message must be a user message")
    system = [Message("system", system_prompt)] if system_prompt.strip() else []
    fixed = _size(system) + len(turns[-1].content)
    older = turns[:-1]
    while older and fixed + _size(older) > budget_chars:
        older = older[2:] if len(older) >= 2 else []
    return [*system, *keep_newest_images([*older, turns[-1]])]
