"""One conversation as a file a person keeps: Markdown to read, JSON to process.

The Markdown goes wherever the person opens it (an editor's preview, a Git host, a notes app), so message
text is made inert exactly as it is for the chat page (`safe_markdown`: no HTML element, no image that loads
by itself) and a code fence a message leaves open is closed, so it cannot swallow the messages after it. The
JSON keeps every text as it was written: it is data, and whoever renders it escapes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from chatapp.history.base import StoredMessage, Unanswered
from chatapp.safe_markdown import safe_markdown

FORMATS = ("markdown", "json")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class Export:
    filename: str
    mime_type: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"filename": self.filename, "mime_type": self.mime_type, "content": self.text}


def filename(conversation_id: str, title: str, extension: str) -> str:
    """A portable file name: the title's ASCII letters and digits, then the id's start (titles repeat)."""
    stem = _UNSAFE_NAME.sub("-", title).strip("-")[:60].strip("-").lower() or "conversation"
    return f"{stem}-{conversation_id[:8]}.{extension}"


def _closed_fences(text: str) -> str:
    """`text` with a closing fence added if it leaves one open (CommonMark: a closing fence is the same
    character, at least as long)."""
    open_fence: str | None = None
    for match in _FENCE.finditer(text):
        fence = match.group(1)
        if open_fence is None:
            open_fence = fence
        elif fence[0] == open_fence[0] and len(fence) >= len(open_fence):
            open_fence = None
    return text if open_fence is None else f"{text}\n{open_fence}"


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def to_markdown(title: str, messages: list[StoredMessage], unanswered: Unanswered | None, exported_at: datetime) -> str:
    parts = [f"# {safe_markdown(title) or 'Untitled conversation'}", f"*Exported {_stamp(exported_at)}.*"]
    for message in messages:
        who = "You" if message.role == "user" else safe_markdown(message.model or "Assistant")
        parts += [f"## {who} · {_stamp(message.created_at)}", _closed_fences(safe_markdown(message.content))]
    if unanswered is not None:
        parts += [
            f"## You · {_stamp(unanswered.created_at)}",
            _closed_fences(safe_markdown(unanswered.text)),
            f"*No reply: {safe_markdown(' '.join(unanswered.error.split()))}*",
        ]
    return "\n\n".join(parts) + "\n"


def to_json(
    conversation_id: str,
    title: str,
    messages: list[StoredMessage],
    unanswered: Unanswered | None,
    exported_at: datetime,
) -> str:
    document = {
        "id": conversation_id,
        "title": title,
        "exported_at": exported_at.isoformat(),
        "messages": [
            {"role": m.role, "content": m.content, "model": m.model, "created_at": m.created_at.isoformat()}
            for m in messages
        ],
        "unanswered": None
        if unanswered is None
        else {"content": unanswered.text, "error": unanswered.error, "created_at": unanswered.created_at.isoformat()},
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
