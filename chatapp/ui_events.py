"""What every event handler of the page and of the API shares: refusals as toasts, a message's parts, the
caller's uploads, and the page's message numbers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from chatapp.conversations import ConversationError
from chatapp.images import Upload, read_images
from chatapp.inputs import InputError
from chatapp.uploads import UploadRegistry

log = logging.getLogger("chatapp.ui")


@contextlib.contextmanager
def people_errors(action: str) -> Iterator[None]:
    """A person's mistake or a refused request becomes a toast and one log line, never a traceback."""
    try:
        yield
    except (InputError, ConversationError) as exc:
        log.info("%s refused: %s", action, exc)
        raise gr.Error(str(exc), print_exception=False) from None


def message_parts(value: Any) -> tuple[Any, list[Any]]:
    """A message as text, or as the multimodal textbox's `{"text": …, "files": […]}` (files as paths or as
    gradio_client's FileData maps), split into its text and its file paths."""
    if not isinstance(value, dict):
        return value, []
    files = value.get("files") or []
    if not isinstance(files, list):
        raise InputError('"files" must be a list of uploaded images.')
    paths = [f.get("path") if isinstance(f, dict) else f for f in files]
    return value.get("text", ""), paths


def shown_id(browser: Any) -> Any:
    """The id of the conversation the page shows (its `gr.BrowserState`): data to check, never trusted."""
    return browser.get("session_id") if isinstance(browser, dict) else None


def shown_by(browser: Any) -> str | None:
    """The key of the per-tab state that last served the page (`Tab.shown`); None from a page older than it."""
    key = browser.get("tab") if isinstance(browser, dict) else None
    return key if isinstance(key, str) else None


def shown_stored(browser: Any) -> bool:
    """Whether the page's conversation was ever stored, as far as the page was told (True when it does not say:
    a conversation missing from the store is then worth a toast)."""
    return not (isinstance(browser, dict) and browser.get("stored") is False)


def sequence_of(value: Any, default: int) -> int:
    """A number the page counts: its messages (chatapp.ui.SEND_JS) or its conversation switches (SWITCH_JS);
    `default` when a client sends none or nonsense."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**53:
        return default
    return int(value)


class CallersUploads:
    """`OpenConversation.Attachments` over the front door's record of who uploaded which file."""

    def __init__(self, registry: UploadRegistry | None) -> None:
        self._registry = registry

    def read(self, owner: str, paths: list[Any]) -> list[Upload]:
        if self._registry is None or not all(self._registry.owns(owner, p) for p in paths):
            # Another person's upload path is answered like an expired one: nothing says it exists.
            raise InputError("An attached image is not one you uploaded here, or it expired: attach it again.")
        return read_images(paths)

    def consume(self, owner: str, paths: list[Any]) -> None:
        if self._registry is not None:
            for path in paths:
                self._registry.consume(owner, path)
