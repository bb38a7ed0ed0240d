"""What a person may see and change: the one owner of the history store once the service is wired.

`Conversations` answers for all of a caller's conversations (list, resume, delete, rename, search, export,
images, the failed message kept across reloads); `chatapp.open_conversation.OpenConversation` is the one a tab
or an API client has open, and goes through this class for everything stored.

Every call takes the caller's owner id (`chatapp.identity.caller`, derived from the request being handled) and
acts only on that owner's conversations. A conversation held in memory (`ChatSession`, kept per browser tab or
API client) is used only by its own owner: one whose owner differs from the caller is refused, so a replayed
Gradio session cannot act on someone else's conversation even if its state reaches us.

Each in-memory conversation has one lock (`ChatSession.save_lock`) that covers its messages and its stored
turns together: a reply appends and saves under it, and undo and retry change both under it, so two events of
one conversation (a double send, an undo while a reply is saved) cannot leave the store and the memory
disagreeing. For that, a replica holds one copy of a conversation in memory, whoever has it open: two tabs of
one browser (each opens the conversation the browser had open), the page and an API client. With a copy each,
both took the next turn's index from their own copy and the later save overwrote a turn the other had been
told was saved.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from chatapp import export
from chatapp.chat import Ask, ChatService, ChatSession, Update
from chatapp.conversation import ImageRef
from chatapp.conversation_replies import Changed, ConversationError, Found, NotFound, Summary, Unavailable
from chatapp.history.base import (
    ChatStore,
    SessionNotFound,
    SessionSummary,
    StoreError,
    TurnsChanged,
    Unanswered,
    title_of,
)
from chatapp.images import Upload
from chatapp.inputs import InputError, clean_message, clean_params, clean_system_prompt, clean_text, clean_thinking
from chatapp.media.base import MediaError, MediaStore
from chatapp.models.base import ModelOptions, options_of

log = logging.getLogger(__name__)

__all__ = [
    "Ask",
    "Changed",
    "Controls",
    "ConversationError",
    "Conversations",
    "Found",
    "NotFound",
    "Summary",
    "Unavailable",
]

# The ids this service creates (uuid4().hex). Anything else is refused before the store sees it.
CONVERSATION_ID = re.compile(r"^[0-9a-f]{32}$")
LIST_LIMIT = 50
SEARCH_LIMIT = 20
MAX_TITLE_INPUT = 1_000  # a title is cut to TITLE_CHARS; longer input is a mistake, not a title
MAX_QUERY_CHARS = 500


@dataclass(frozen=True)
class Controls:
    """The generation settings sent with a message, as the page or an API client sent them: unchecked until
    `Conversations.check` (or `ask`) turns them into an `Ask`."""

    model: Any
    temperature: Any
    top_p: Any
    max_tokens: Any
    system_prompt: Any = ""
    thinking: Any = None  # none chosen: the model's default


def _checked_id(conversation_id: Any) -> str:
    if not isinstance(conversation_id, str) or not CONVERSATION_ID.match(conversation_id):
        raise InputError("That is not a valid conversation id.")
    return conversation_id


def _summary(stored: SessionSummary) -> Summary:
    return Summary(stored.session_id, stored.title, stored.updated_at, stored.turns)


class Conversations:
    def __init__(
        self, service: ChatService, store: ChatStore, list_limit: int = LIST_LIMIT, media: MediaStore | None = None
    ) -> None:
        self._service = service
        self._store = store
        self._list_limit = list_limit
        self._media = media
        # The conversations open on this replica, by (owner, id): one copy each, gone once nobody holds it.
        self._open: weakref.WeakValueDictionary[tuple[str, str], ChatSession] = weakref.WeakValueDictionary()
        self._open_lock = threading.Lock()

    @property
    def models(self) -> list[str]:
        """The model labels a person can choose from, in menu order."""
        return list(self._service.models)

    def options(self, label: Any) -> ModelOptions:
        """What the page offers for one model (its defaults, its thinking levels); a label not in the menu has
        nothing of its own to offer."""
        model = self._service.models.get(label) if isinstance(label, str) else None
        return options_of(model)

    # -- input checks (each rule lives in chatapp.inputs; this is the one place that applies them) --------

    @staticmethod
    def check_message(message: Any) -> str:
        """The message as it will be sent; raises InputError saying what to change."""
        return clean_message(message)

    def check(self, message: Any, controls: Controls, images: tuple[ImageRef, ...] = ()) -> Ask:
        """Everything sent with a message, checked; raises InputError naming the first bad value."""
        return self.ask(clean_message_or_images(message, images), controls, images)

    def ask(self, text: str, controls: Controls, images: tuple[ImageRef, ...] = ()) -> Ask:
        """`check` for a message checked already (`OpenConversation.accept`): only its settings are checked."""
        chosen = self._service.model(controls.model)
        params = clean_params(controls.temperature, controls.top_p, controls.max_tokens)
        params = replace(params, thinking=clean_thinking(controls.thinking, options_of(chosen).thinking_levels))
        return Ask(text, controls.model, params, clean_system_prompt(controls.system_prompt), images)

    # -- images -------------------------------------------------------------------------------------------

    def attach(self, owner: str, session: ChatSession, uploads: list[Upload]) -> tuple[ImageRef, ...]:
        """Store checked images in the caller's conversation; the references go with the next message."""
        self._own(owner, session)
        if not uploads:
            return ()
        if self._media is None:
            raise InputError("This chat takes text only.")
        refs: list[ImageRef] = []
        try:
            for upload in uploads:
                ref = self._media.put(owner, session.session_id, upload.data, upload.mime_type)
                refs.append(replace(ref, data=upload.data))  # sent to the model without reading it back
        except MediaError as exc:
            self.forget_images(owner, session, refs)
            raise Unavailable(f"Could not store the image: {exc}") from None
        return tuple(refs)

    def image(self, owner: str, conversation_id: str, image_id: str) -> bytes:
        """An image of one of the caller's conversations (MediaNotFound for anyone else's)."""
        if self._media is None:
            raise NotFound()
        return self._media.get(owner, conversation_id, image_id)

    def forget_images(self, owner: str, session: ChatSession, images: Any) -> None:
        """Delete attached images that no stored message references (a message taken back before its reply)."""
        if not images or self._media is None or not self.owns(owner, session):
            return
        try:
            self._media.delete(owner, session.session_id, [i.id for i in images])
        except MediaError as exc:
            log.error("images left in the media store: %s", exc)

    def _delete_media(self, owner: str, conversation_id: str) -> None:
        if self._media is None:
            return
        try:
            self._media.delete_conversation(owner, conversation_id)
        except MediaError as exc:  # the conversation is gone already; the images are unreachable but kept
            log.error("images of a deleted conversation left in the media store: %s", exc)

    # -- opening ------------------------------------------------------------------------------------------

    def start(self, owner: str) -> ChatSession:
        """A new, empty conversation (stored with its first turn)."""
        return self._held(ChatSession(owner=owner))

    def resume(self, owner: str, conversation_id: Any) -> ChatSession:
        """One of the caller's conversations with all its messages; NotFound for any other id. Read from the
        store every time (so a deleted one is not found), and the copy open on this replica if there is one."""
        conversation_id = _checked_id(conversation_id)
        try:
            stored = self._store.load_messages(conversation_id, owner)
        except SessionNotFound:
            raise NotFound() from None
        except StoreError as exc:
            raise Unavailable(f"Could not load the conversation: {exc}") from None
        return self._held(ChatSession.resumed(owner, conversation_id, stored))

    def _held(self, session: ChatSession) -> ChatSession:
        """The replica's one copy of `session`'s conversation: `session` itself unless one is open already, then
        that one, brought up to the store's turns if another replica added some since it was read. The owner is
        part of the key: another caller's copy is never found here."""
        with self._open_lock:
            held = self._open.setdefault((session.owner, session.session_id), session)
        if held is not session:
            with held.save_lock:
                if session.turns > held.turns:
                    held.messages[:] = session.messages
        return held

    def reopen(self, owner: str, conversation_id: Any) -> ChatSession:
        """The conversation a browser had open when it reloaded, or a new one if it is gone or not the
        caller's (the id comes from browser storage: data to check, never a credential)."""
        if conversation_id is None:
            return self.start(owner)
        try:
            return self.resume(owner, conversation_id)
        except (InputError, NotFound):  # never saved (no turn finished), deleted, or not theirs: start afresh
            return self.start(owner)

    def owns(self, owner: str, session: Any) -> bool:
        """Whether `session` (e.g. per-tab state) is a conversation of `owner`; others must be discarded."""
        return isinstance(session, ChatSession) and session.owner == owner

    def _own(self, owner: str, session: ChatSession) -> None:
        if not self.owns(owner, session):
            # The caller holds state that is not theirs (a replayed Gradio session): act on nothing.
            log.warning("refused: a request used a conversation that is not the caller's")
            raise NotFound()

    # -- listing and deleting ----------------------------------------------------------------------------

    def list(self, owner: str) -> list[Summary]:
        """The caller's conversations, most recently updated first."""
        try:
            return [_summary(s) for s in self._store.list_sessions(owner, self._list_limit)]
        except StoreError as exc:
            raise Unavailable(f"Could not list your conversations: {exc}") from None

    def delete(self, owner: str, conversation_id: Any) -> None:
        """Delete one of the caller's conversations; NotFound for any other id."""
        conversation_id = _checked_id(conversation_id)
        try:
            self._store.delete_session(conversation_id, owner)
        except SessionNotFound:
            raise NotFound() from None
        except StoreError as exc:
            raise Unavailable(f"Could not delete the conversation: {exc}") from None
        self._delete_media(owner, conversation_id)

    def discard(self, owner: str, session: ChatSession) -> None:
        """Delete the open conversation if it was ever stored; nothing to do for one without turns."""
        self._own(owner, session)
        with session.save_lock:
            # Even without turns: a message whose reply failed is stored with the conversation.
            try:
                self._store.delete_session(session.session_id, owner)
            except SessionNotFound:
                pass  # never stored, or deleted elsewhere already
            except StoreError as exc:
                raise Unavailable(f"Could not delete the conversation: {exc}") from None
            session.messages.clear()
        self._delete_media(owner, session.session_id)

    # -- turns --------------------------------------------------------------------------------------------

    def reply(
        self, owner: str, session: ChatSession, ask: Ask, stop: Callable[[], bool] | None = None
    ) -> Iterator[Update]:
        """Stream the reply to `ask` in the caller's conversation and store the turn (see ChatService.reply)."""
        self._own(owner, session)
        return self._service.reply(session, ask, stop)

    def retry(self, owner: str, session: ChatSession) -> str | None:
        """Take back the last turn to answer its message again; returns that message (None if none).

        Only memory changes: the new reply is stored at the same position, replacing the old one."""
        self._own(owner, session)
        with session.save_lock:
            last = session.drop_last_turn()
            if last is not None:
                session.replacing = session.turns
        return last.content if last else None

    def undo(self, owner: str, session: ChatSession) -> str | None:
        """Remove the last turn from the conversation and the store; returns its message (None if none).

        The store goes first: if it fails, memory keeps the turn too and Unavailable says so, so what the
        person sees is what is stored. A conversation left with no turn is deleted (it is unlisted)."""
        self._own(owner, session)
        with session.save_lock:
            if not session.turns:
                return None
            try:
                self._store.truncate(session.session_id, owner, session.turns - 1, shown=session.turns)
            except SessionNotFound:
                pass  # its turns were never stored (or it was deleted elsewhere): memory alone changes
            except TurnsChanged:
                raise Changed(
                    "This conversation went on elsewhere (on another device) since this page opened it, so its "
                    "last turn is not the one shown here: nothing was undone. Reload the page to see every turn."
                ) from None
            except StoreError as exc:
                raise Unavailable(f"Could not undo the last turn: {exc}") from None
            last = session.drop_last_turn()
        if last is not None:
            self.forget_images(owner, session, last.images)  # the turn is gone from the store: so are its images
        return last.content if last else None

    # -- the store's health, for the server's probes ------------------------------------------------------

    def ping(self) -> None:
        """Raises StoreError when the history store cannot be reached."""
        self._store.ping()

    # -- usage ----------------------------------------------------------------------------------------------

    def usage_line(self, owner: str) -> str:
        """The caller's token usage today (and the daily limit, if any), in one line for the page."""
        usage = self._service.usage
        return usage.summary(owner) if usage is not None else ""

    def usage_report(self, owner: str) -> dict[str, Any]:
        """The caller's token usage today for the API: tokens_today, limit, resets_at."""
        usage = self._service.usage
        return usage.report(owner) if usage is not None else {"tokens_today": None, "limit": None, "resets_at": None}

    # -- rename, search, export ---------------------------------------------------------------------------

    def rename(self, owner: str, conversation_id: Any, title: Any) -> Summary:
        """Give one of the caller's conversations a title; returns its new entry. NotFound for any other id."""
        conversation_id = _checked_id(conversation_id)
        name = title_of(clean_text(title, "title", MAX_TITLE_INPUT))
        if not name:
            raise InputError("The title is empty. Type a name for the conversation.")
        try:
            self._store.rename_session(conversation_id, owner, name)
            return _summary(self._store.describe_session(conversation_id, owner))
        except SessionNotFound:
            raise NotFound() from None
        except StoreError as exc:
            raise Unavailable(f"Could not rename the conversation: {exc}") from None

    def search(self, owner: str, query: Any) -> list[Found]:
        """The caller's conversations whose title or a message holds every word of `query` (as word starts),
        newest first; an empty query finds nothing (the full list is `list`)."""
        text = clean_text(query, "search", MAX_QUERY_CHARS)
        try:
            hits = self._store.search_sessions(owner, text, SEARCH_LIMIT)
        except StoreError as exc:
            raise Unavailable(f"Could not search your conversations: {exc}") from None
        return [Found(_summary(hit.summary), hit.excerpt) for hit in hits]

    def export(self, owner: str, conversation_id: Any, format: Any) -> export.Export:
        """One of the caller's conversations as a Markdown or JSON file; NotFound for any other id."""
        conversation_id = _checked_id(conversation_id)
        if format not in export.FORMATS:
            raise InputError(f"Export as {' or '.join(export.FORMATS)}, not {format!r}.")
        try:
            about = self._store.describe_session(conversation_id, owner)
            messages = self._store.load_messages(conversation_id, owner)
        except SessionNotFound:
            raise NotFound() from None
        except StoreError as exc:
            raise Unavailable(f"Could not export the conversation: {exc}") from None
        unanswered = about.unanswered if _current(about.unanswered, len(messages) // 2) else None
        now = datetime.now(UTC)
        if format == "json":
            text = export.to_json(conversation_id, about.title, messages, unanswered, now)
            return export.Export(export.filename(conversation_id, about.title, "json"), "application/json", text)
        text = export.to_markdown(about.title, messages, unanswered, now)
        return export.Export(export.filename(conversation_id, about.title, "md"), "text/markdown", text)

    # -- a message whose reply failed, kept with its conversation across reloads ---------------------------

    def unanswered(self, owner: str, session: ChatSession) -> Unanswered | None:
        """The caller's failed message waiting at the end of this conversation, if one is stored."""
        self._own(owner, session)
        try:
            about = self._store.describe_session(session.session_id, owner)
        except SessionNotFound:
            return None
        except StoreError as exc:
            log.warning("could not read a failed message back: %s", exc)
            return None
        return about.unanswered if _current(about.unanswered, session.turns) else None

    def remember_unanswered(self, owner: str, session: ChatSession, text: str, error: str) -> bool:
        """Store a message whose reply failed, with its error, so a reload shows it and can retry it.
        False when the store could not keep it (the tab still holds it; nothing else depends on it)."""
        self._own(owner, session)
        record = Unanswered(text, error, session.turns, datetime.now(UTC))
        try:
            self._store.save_unanswered(session.session_id, owner, record)
        except StoreError as exc:
            log.warning("a failed message was not kept for later: %s", exc)
            return False
        return True

    def forget_unanswered(self, owner: str, session: ChatSession) -> None:
        """The person took the failed message back (undo): forget the stored copy."""
        self._own(owner, session)
        try:
            self._store.clear_unanswered(session.session_id, owner)
        except SessionNotFound:
            pass  # never stored
        except StoreError as exc:
            raise Unavailable(f"Could not take the message back: {exc}") from None

    # -- what a person sees of a conversation -------------------------------------------------------------

    @staticmethod
    def summary_of(session: ChatSession) -> Summary:
        """The list entry of a conversation just stored, without reading the store again."""
        first = next((m for m in session.messages if m.role == "user"), None)
        title = title_of(first.content) if first else ""
        if first is not None and not title and first.images:
            title = "(image)"
        return Summary(session.session_id, title, datetime.now(UTC), session.turns)


def clean_message_or_images(message: Any, images: Sequence[Any]) -> str:
    """The message text; it may be empty only when images (or uploads to become images) carry the message."""
    if images and (message is None or (isinstance(message, str) and not message.strip())):
        return ""
    return clean_message(message)


def _current(unanswered: Unanswered | None, turns: int) -> bool:
    """A failed message is current until a turn is stored at its position (then the retry has answered it)."""
    return unanswered is not None and unanswered.after_turns == turns
