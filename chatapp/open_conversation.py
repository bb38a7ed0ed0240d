"""The conversation one browser tab or one API client has open, from its first message to its deletion.

`OpenConversation` is the one owner of what such a conversation is between two events: its messages (the
`ChatSession` the models see), the message still waiting for a reply with its images and its notice, and
whether it is stored yet. The page and the API both go through it (`accept`, then `reply`), so one turn runs
page → `OpenConversation` → `Conversations` → `ChatService` → models and history, and never back.

It can always be rebuilt from what the browser sends (the id of the conversation on screen) plus the store:
`recover` is what a replica that never saw the tab (or a tab whose state expired, or whose state is older than
what the page shows) does, checking the id against the caller like any other data.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from chatapp.chat import ChatSession, Update
from chatapp.conversation import ImageRef, Message
from chatapp.conversations import (
    Controls,
    ConversationError,
    Conversations,
    NotFound,
    Summary,
    clean_message_or_images,
)
from chatapp.images import MAX_IMAGES_PER_MESSAGE, Upload
from chatapp.inputs import InputError

log = logging.getLogger(__name__)

RECOVERED = "This page's conversation was reloaded from your history (the server had lost track of this tab)."
NOT_RECOVERED = (
    "The conversation this page showed is not in your history (it may have been deleted): "
    "a new conversation starts here."
)
TAKEN_BACK = "Stopped before the reply began: your message is back in the box."


class Attachments(Protocol):
    """The caller's uploaded files (`chatapp.uploads`): checked as theirs, read, and removed once stored."""

    def read(self, owner: str, paths: list[Any]) -> list[Upload]:
        """The caller's own uploads, checked; raises InputError for anything else."""
        ...

    def consume(self, owner: str, paths: list[Any]) -> None: ...


@dataclass
class OpenConversation:
    conversations: Conversations
    owner: str
    session: ChatSession
    # A message whose reply has not arrived (being answered, or failed): shown after the stored messages.
    unanswered: str | None = None
    notice: str | None = None  # what went wrong with it, for the person
    # The images of the unanswered message (already in the media store; referenced once its turn is saved).
    images: tuple[ImageRef, ...] = ()
    stored: bool = False  # in the store (with a turn, or a failed message kept for a reload)
    # A page keeps a failed message for retry (and across reloads); an API client gets the error in the reply
    # and sends again itself.
    keeps_failed: bool = True

    # -- opening ----------------------------------------------------------------------------------------------

    @classmethod
    def start(cls, conversations: Conversations, owner: str, keeps_failed: bool = True) -> OpenConversation:
        """A new, empty conversation (stored with its first turn or its first failed message)."""
        return cls(conversations, owner, conversations.start(owner), keeps_failed=keeps_failed)

    @classmethod
    def open(cls, conversations: Conversations, owner: str, conversation_id: Any) -> OpenConversation:
        """One of the caller's stored conversations, with its failed message if one waits; NotFound (or
        InputError) for any other id."""
        return cls(conversations, owner, conversations.resume(owner, conversation_id))._stored()

    @classmethod
    def reopen(cls, conversations: Conversations, owner: str, conversation_id: Any) -> OpenConversation:
        """The conversation a browser had open when it reloaded, or a new one if it is gone or not the
        caller's; Unavailable when the store cannot say."""
        opened = cls(conversations, owner, conversations.reopen(owner, conversation_id))
        return opened._stored() if opened.id == conversation_id else opened

    def _stored(self) -> OpenConversation:
        self.stored = True
        if (failed := self.conversations.unanswered(self.owner, self.session)) is not None:
            self.unanswered, self.notice = failed.text, failed.error
        return self

    @classmethod
    def recover(
        cls,
        conversations: Conversations,
        owner: str,
        shown: Any,
        notify: Callable[[str], None],
        saved: bool = True,
        announce: bool = True,
    ) -> OpenConversation:
        """The conversation a page shows (`shown`, from browser storage), rebuilt from the store when this
        server holds nothing for the tab, or holds an out-of-date copy; `notify` tells the person what happened
        (`announce`: that it was reloaded; not for an out-of-date copy, since the page already shows what is
        stored). Never another one silently: a conversation that is gone (or not the caller's) starts a new one,
        and says so, unless the page says it was never `saved` (a new conversation: nothing was lost)."""
        if shown is None:
            return cls.start(conversations, owner)
        try:
            recovered = cls.open(conversations, owner, shown)
        except (InputError, NotFound):
            if saved:
                notify(NOT_RECOVERED)
            return cls.start(conversations, owner)
        except ConversationError as exc:  # the store is unreachable: acting on an empty conversation would lie
            raise ConversationError(f"{exc} Reload the page to try again.") from None
        if announce:
            notify(RECOVERED)
        return recovered

    @property
    def id(self) -> str:
        return self.session.session_id

    def belongs_to(self, owner: str) -> bool:
        """Whether the caller may act on this conversation (per-tab state replayed by another is refused)."""
        return self.owner == owner and self.conversations.owns(owner, self.session)

    def describe(self) -> Summary:
        """Its entry in the sidebar, without reading the store again."""
        if self.session.turns:
            return self.conversations.summary_of(self.session)
        waiting = [Message("user", self.unanswered or "", images=self.images)]
        return self.conversations.summary_of(ChatSession(self.owner, self.id, waiting))

    # -- a turn ---------------------------------------------------------------------------------------------

    def accept(self, text: Any, paths: list[Any], attachments: Attachments | None) -> None:
        """Check a message (the one place it is checked) and its images, and hold it until `reply`; a message
        whose reply failed joins this one."""
        message = clean_message_or_images(text, paths)
        images = self._attach(paths, attachments)
        if self.unanswered is not None and self.keeps_failed:
            message = "\n\n".join(t for t in (self.unanswered, message) if t)
        else:
            self.images = ()
        self.unanswered, self.notice, self.images = message, None, self.images + images

    def _attach(self, paths: list[Any], attachments: Attachments | None) -> tuple[ImageRef, ...]:
        """The caller's own uploads, stored in this conversation; the temporary files go."""
        if not paths:
            return ()
        held = len(self.images) if self.keeps_failed else 0
        if len(paths) + held > MAX_IMAGES_PER_MESSAGE:
            raise InputError(f"A message may carry at most {MAX_IMAGES_PER_MESSAGE} images.")
        if attachments is None:
            raise InputError("An attached image is not one you uploaded here, or it expired: attach it again.")
        refs = self.conversations.attach(self.owner, self.session, attachments.read(self.owner, paths))
        attachments.consume(self.owner, paths)
        return refs

    def reply(self, controls: Controls, stop: Callable[[], bool] | None = None) -> Iterator[Update]:
        """Answer the accepted message: the reply's updates, the last one `done`. Raises InputError (before
        anything is sent) for a bad setting. When `stop()` turns true the reply ends (even before the model's
        first chunk) and what streamed is stored; the last update then holds what was stored, and is `stopped`."""
        if self.unanswered is None:
            return
        ask = self.conversations.ask(self.unanswered, controls, self.images)
        turns_before = self.session.turns
        thought = ""
        try:
            with contextlib.closing(self.conversations.reply(self.owner, self.session, ask, stop)) as updates:
                for update in updates:
                    if update.done:
                        self._settle(update)
                        yield update
                        return
                    thought = update.thinking
                    if stop is not None and stop():
                        break  # closing the reply stores what has streamed (ChatService.reply)
                    yield update
            stored = self.session.messages[-1].content if self.session.turns > turns_before else ""
            final = Update(stored, thinking=thought, done=True, stopped=True)
            self._settle(final)
            yield final
        finally:
            # Should the caller go away mid-reply, the partial reply was still saved as a turn: the message is
            # answered, so it must not be joined with the next one.
            if self.session.turns > turns_before:
                self.unanswered, self.images = None, ()
                self.stored = True

    def _settle(self, update: Update) -> None:
        self.notice = update.notice
        if update.text.strip():
            self.unanswered, self.images = None, ()  # the turn is now part of the session
        elif update.notice and self.unanswered is not None:
            if not self.keeps_failed:
                self.unanswered, self.images = None, ()
            elif self.conversations.remember_unanswered(self.owner, self.session, self.unanswered, update.notice):
                self.stored = True  # a reload shows it again, ready for retry
        if self.session.turns:
            self.stored = True

    def take_back(self) -> str:
        """A message stopped before its reply began goes back to the person (its images go)."""
        text, self.unanswered = self.unanswered or "", None
        with contextlib.suppress(ConversationError):  # a failed message kept for a reload is taken back too
            self.conversations.forget_unanswered(self.owner, self.session)
        self.conversations.forget_images(self.owner, self.session, self.images)
        note = " Attach its images again." if self.images else ""
        self.images, self.notice = (), TAKEN_BACK + note
        self.stored = self.stored and bool(self.session.turns)
        return text

    # -- changing what was said -------------------------------------------------------------------------------

    def retry(self) -> None:
        """Answer the last message again (the failed one, or the last turn's, taken back in memory only: the
        new reply is stored at the same position)."""
        if self.unanswered is None:
            last = next((m for m in reversed(self.session.messages) if m.role == "user"), None)
            self.unanswered = self.conversations.retry(self.owner, self.session)
            self.images = last.images if last is not None and self.unanswered is not None else ()
        self.notice = None

    def undo(self) -> str:
        """Take back the last message (a failed one, or the last turn, from the store too); returns its text.
        A conversation left with nothing is no longer stored (the store deletes it)."""
        self.notice = None
        if self.unanswered is not None:
            self.conversations.forget_unanswered(self.owner, self.session)
            text, self.unanswered = self.unanswered, None
            self.conversations.forget_images(self.owner, self.session, self.images)
            self.images = ()
        else:
            text = self.conversations.undo(self.owner, self.session) or ""
        if not self.session.turns:
            self.stored = False
        return text

    def discard(self) -> None:
        """Delete this conversation (if it was ever stored) and everything of it."""
        self.conversations.discard(self.owner, self.session)
        self.unanswered, self.notice, self.images, self.stored = None, None, (), False
