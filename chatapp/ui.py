"""The Gradio 6 interface over `Conversations`: chat, model switch, generation controls, a sidebar of past
conversations (search, rename, export), and the API (`/chat`, `/resume`, `/conversations`, `/delete`,
`/rename`, `/search`, `/export`).

Every handler, public or private, derives the caller from the request it handles (`identity.caller`), never
from Gradio state: Gradio keys `gr.State` by the client-supplied `session_hash` alone, so per-tab state (`Tab`)
whose conversation belongs to someone else is discarded, never used. The `gr.BrowserState` keeps only the id of
the open conversation across page reloads (Gradio's session_hash changes on every load); the server checks
that id like any other data. Message text is made inert (`safe_markdown`) before the Chatbot renders it.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from chatapp import gradio_compat
from chatapp.chat import ChatService, ChatSession, Update
from chatapp.conversation import ImageRef, Message
from chatapp.conversations import ChatStore, ConversationError, Conversations, Found, Summary
from chatapp.history.base import title_of
from chatapp.identity import caller
from chatapp.images import MAX_IMAGES_PER_MESSAGE, read_images
from chatapp.inputs import InputError
from chatapp.media.base import MediaStore
from chatapp.models.base import MAX_TOKENS_RANGE, TEMPERATURE_RANGE, TOP_P_RANGE
from chatapp.safe_markdown import safe_markdown
from chatapp.status import ModelStatus
from chatapp.uploads import UploadRegistry

log = logging.getLogger(__name__)

BROWSER_STORAGE_KEY = "hybrid-chat"
# Gradio sends a BrowserState's key to every browser in /config, so it protects nothing; the stored value (the
# open conversation id) is data the server checks. A fixed key keeps it readable across restarts and replicas.
BROWSER_STATE_KEY = "hybrid-chat-open-conversation"
IAP_SIGN_OUT = "/?gcp-iap-mode=CLEAR_LOGIN_COOKIE"
PASSWORD_SIGN_OUT = "/logout"
EXPORT_FORMATS = [("Markdown", "markdown"), ("JSON", "json")]
# The export arrives as a JSON value ({filename, mime_type, content}); the browser turns it into a download
# itself, so no file is written on the server (Gradio's file cache is never cleaned and is served by URL).
DOWNLOAD_JS = """(file) => {
    if (!file || !file.content) return;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([file.content], {type: file.mime_type + ";charset=utf-8"}));
    link.download = file.filename;
    document.body.appendChild(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}"""
UPLOAD_EXPIRY_S = 3600
# Per-tab state (the open conversation, a failed message) is dropped this long after the tab's last event, so
# abandoned sessions cannot pile up (Gradio otherwise keeps up to 10,000). A tab that comes back later reopens
# its conversation from the store (the page remembers which one is open).
TAB_TTL_S = 3600
# The page numbers each message it sends (and each retry), and Stop sends the number of the latest one: the
# server can then tell "stop the message I just sent" from a Stop pressed on an idle page. The number is taken
# when the person acts (capturing listeners, installed once the page is ready), not in the event's own js,
# which Gradio runs later: a Stop clicked right after Send had its request out first. It travels in the hidden
# `sequence` input, last; js on an event with a Python function returns that function's inputs.
READY_JS = """() => {
    const sent = () => { window.hybridChatSent = (window.hybridChatSent || 0) + 1; };
    document.addEventListener('click', (e) => {
        if (e.target.closest('#send') || e.target.closest("#chatbot button[aria-label='Retry']")) sent();
    }, true);
    document.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.target.closest('#message')) sent();
    }, true);
    document.body.dataset.chatReady = 'true';
}"""
SEND_JS = "(...inputs) => [...inputs.slice(0, %d), window.hybridChatSent || 0]"
STOP_JS = "(tab) => [tab, window.hybridChatSent || 0]"


@dataclass
class Tab:
    """Per-tab server state: the open conversation and a reply that failed before any text arrived."""

    session: ChatSession
    unanswered: str | None = None
    notice: str | None = None
    # The images of the unanswered message (already in the media store; referenced once its turn is saved).
    images: tuple[ImageRef, ...] = ()
    # What this tab's sidebar lists. An event receives a Radio's value, never its choices, so a first turn
    # needs this to add its entry without dropping the others (and without reading the store again).
    sidebar: list[tuple[str, str]] = field(default_factory=list)
    # "Answered by …" for the last reply of an entry that delegates (Auto); shown under the chat.
    answered: str | None = None
    # What the model thought before each of this tab's replies, by the reply's index in session.messages (with
    # the reply itself, so an undone reply's thinking never shows above another): shown in a closed "Thinking"
    # block above the reply, never part of it, never stored.
    thinking: dict[int, tuple[Message, str]] = field(default_factory=dict)
    # Stop, without Gradio's cancel (which abandons a reply running in a worker thread, so it was saved later,
    # by the garbage collector, and its message glued to the next one; two at once gave a 500). The page numbers
    # its sends (SEND_JS): `sent` is the number of the message being answered, `stop_at` the number the page
    # had sent when Stop was pressed. A reply whose number is at most `stop_at` ends at its next update, even
    # when the Stop reached the server before the message did.
    sent: int = 0
    stop_at: int = -1


# Every streamed update re-renders the whole conversation, whose earlier messages never change: remember them.
# Partial replies go uncached (each is new), so they cannot push the finished messages out.
_finished = functools.lru_cache(maxsize=512)(safe_markdown)


def with_images(markdown: str, conversation_id: str, images: tuple[ImageRef, ...]) -> str:
    """Message Markdown (already inert) followed by its images, served by the chat itself with an owner check
    (`/media/...`; the ids are hex, checked when stored, so nothing in them can break out of the URL)."""
    if not images:
        return markdown
    links = [f"![image {n}](/media/{conversation_id}/{i.id})" for n, i in enumerate(images, 1)]
    return "\n\n".join([markdown, *links]) if markdown else "\n\n".join(links)


def thinking_block(thinking: str, markdown: str | None = None) -> dict[str, Any]:
    """A Chatbot message with a title: Gradio 6 shows it as a collapsible block, closed when its status is done."""
    return {
        "role": "assistant",
        "content": markdown if markdown is not None else safe_markdown(thinking),
        "metadata": {"title": "Thinking", "status": "done"},
    }


def messages_for(tab: Tab, partial: str | None = None, thinking: str = "") -> list[dict[str, Any]]:
    sid = tab.session.session_id
    out = []
    for index, m in enumerate(tab.session.messages):
        if m.role == "system":
            continue
        reply, thought = tab.thinking.get(index, (None, ""))
        if thought and reply is m:
            out.append(thinking_block(thought, _finished(thought)))
        out.append({"role": m.role, "content": with_images(_finished(m.content), sid, m.images)})
    if tab.unanswered is not None:
        out.append({"role": "user", "content": with_images(safe_markdown(tab.unanswered), sid, tab.images)})
    if thinking:
        out.append(thinking_block(thinking))
    if partial:
        out.append({"role": "assistant", "content": safe_markdown(partial)})
    if tab.notice:
        out.append({"role": "assistant", "content": safe_markdown(f"⚠️ {tab.notice}")})
    return out


def sidebar_choices(conversations: list[Summary]) -> list[tuple[str, str]]:
    return [(f"{c.title or 'Untitled'} · {c.updated_at:%b %d %H:%M}", c.id) for c in conversations]


def search_choices(found: list[Found]) -> list[tuple[str, str]]:
    """Search results as sidebar entries: the title, then what matched in a message (a Radio label is text)."""
    return [
        (f"{f.summary.title or 'Untitled'} · {f.excerpt}" if f.excerpt else f.summary.title or "Untitled", f.summary.id)
        for f in found
    ]


def signed_in_as(owner: str, request: gr.Request) -> str:
    """HTML naming who is signed in, with the sign-out link of the sign-in in use (in this tab, not a new one
    as Markdown links open)."""
    if owner.startswith("browser:"):
        return "<p>Signed in as <strong>this browser</strong> (no sign-in: a cookie holds your conversations)</p>"
    name = html.escape(owner.removeprefix("user:"))
    iap = request is not None and request.headers.get("x-goog-iap-jwt-assertion")
    sign_out = IAP_SIGN_OUT if iap else PASSWORD_SIGN_OUT
    return f'<p>Signed in as <strong>{name}</strong> · <a href="{html.escape(sign_out)}">Sign out</a></p>'


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


class ChatUI:
    def __init__(
        self,
        service: ChatService,
        store: ChatStore,
        status: ModelStatus,
        media: MediaStore | None = None,
        uploads: UploadRegistry | None = None,
    ) -> None:
        # The wiring: from here on only `Conversations` holds the store.
        self.conversations = Conversations(service, store, media=media)
        self.status = status
        self.uploads = uploads

    def _attach(self, owner: str, tab: Tab, paths: list[Any]) -> tuple[ImageRef, ...]:
        """The caller's own uploads, checked and stored in the tab's conversation; the temporary files go."""
        if not paths:
            return ()
        if len(paths) + len(tab.images) > MAX_IMAGES_PER_MESSAGE:
            raise InputError(f"A message may carry at most {MAX_IMAGES_PER_MESSAGE} images.")
        if self.uploads is None or not all(self.uploads.owns(owner, p) for p in paths):
            # Another person's upload path is answered like an expired one: nothing says it exists.
            raise InputError("An attached image is not one you uploaded here, or it expired: attach it again.")
        refs = self.conversations.attach(owner, tab.session, read_images(paths))
        for path in paths:
            self.uploads.consume(owner, path)
        return refs

    def _tab(self, state: Any, owner: str, browser: Any = None) -> Tab:
        """The caller's own per-tab state; anything else (none yet, or a replayed session of someone else's)
        is discarded for a new conversation of the caller. With `browser` (the page's open conversation), a tab
        whose state expired (TAB_TTL_S) goes on in the conversation it shows, read back from the store."""
        if isinstance(state, Tab) and self.conversations.owns(owner, state.session):
            return state
        if state is not None:
            log.warning("discarded per-tab state that belongs to another caller")
        opened = browser.get("session_id") if isinstance(browser, dict) and state is None else None
        try:
            session = self.conversations.reopen(owner, opened)
        except ConversationError as exc:
            gr.Warning(str(exc))
            session = self.conversations.start(owner)
        return self._with_unanswered(owner, Tab(session, sidebar=self._sidebar(owner))) if opened else Tab(session)

    def _sidebar(self, owner: str) -> list[tuple[str, str]]:
        try:
            return sidebar_choices(self.conversations.list(owner))
        except ConversationError as exc:
            gr.Warning(str(exc))
            return []

    # -- conversation lifecycle --------------------------------------------------------------------------

    def load(self, browser: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        opened = browser.get("session_id") if isinstance(browser, dict) else None
        try:
            session = self.conversations.reopen(owner, opened)
        except ConversationError as exc:
            gr.Warning(str(exc))
            session = self.conversations.start(owner)
        tab = self._with_unanswered(owner, Tab(session, sidebar=self._sidebar(owner)))
        listed = any(sid == session.session_id for _, sid in tab.sidebar)
        return (
            tab,
            {"session_id": session.session_id},
            messages_for(tab),
            gr.update(choices=tab.sidebar, value=session.session_id if listed else None),
            signed_in_as(owner, request),
            self.status.markdown(),
        )

    def model_controls(self, label: Any, request: gr.Request) -> tuple:
        """The controls of the chosen model: its own defaults, and a thinking level only where it has some."""
        caller(request)
        options = self.conversations.options(label)
        levels = list(options.thinking_levels)
        return (
            gr.update(value=options.temperature),
            gr.update(value=options.top_p),
            gr.update(value=options.max_tokens),
            gr.update(choices=levels, value=options.thinking, visible=bool(levels)),
            options.note,
        )

    def model_status(self, request: gr.Request) -> str:
        caller(request)  # nothing for strangers, like every other event
        return self.status.markdown()

    def new_chat(self, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        old = self._tab(state, owner)
        tab = Tab(self.conversations.start(owner), sidebar=old.sidebar if old is state else self._sidebar(owner))
        return tab, {"session_id": tab.session.session_id}, [], gr.update(choices=tab.sidebar, value=None)

    def resume(self, conversation_id: Any, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        old = self._tab(state, owner)
        with people_errors("resume"):
            session = self.conversations.resume(owner, conversation_id)
        tab = Tab(session, sidebar=old.sidebar if old is state else self._sidebar(owner))
        return self._with_unanswered(owner, tab), {"session_id": session.session_id}, messages_for(tab)

    def _with_unanswered(self, owner: str, tab: Tab) -> Tab:
        """Show the conversation's stored failed message again, with its error, ready for retry."""
        if (failed := self.conversations.unanswered(owner, tab.session)) is not None:
            tab.unanswered, tab.notice = failed.text, failed.error
        return tab

    def ask_delete(self, request: gr.Request) -> tuple:
        caller(request)
        return gr.update(visible=False), gr.update(visible=True)

    def keep(self, request: gr.Request) -> tuple:
        caller(request)
        return gr.update(visible=True), gr.update(visible=False)

    def confirm_delete(self, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("delete"):
            self.conversations.discard(owner, tab.session)
        tab = Tab(self.conversations.start(owner), sidebar=self._sidebar(owner))
        return (
            tab,
            {"session_id": tab.session.session_id},
            [],
            gr.update(choices=tab.sidebar, value=None),
            gr.update(visible=True),
            gr.update(visible=False),
        )

    # -- sending -----------------------------------------------------------------------------------------

    def accept(self, text: Any, state: Any, browser: Any, sequence: Any, request: gr.Request) -> tuple:
        """Check the message, show it at once, and clear the box; the reply streams in `respond`."""
        owner = caller(request)
        tab = self._tab(state, owner, browser)
        with people_errors("message"):
            text, paths = message_parts(text)
            if paths and not (isinstance(text, str) and text.strip()):
                message = ""  # images alone are a message
            else:
                message = self.conversations.check_message(text)
            images = self._attach(owner, tab, paths)
        if tab.unanswered is not None:  # the previous message got no reply: it joins this one
            message = "\n\n".join(t for t in (tab.unanswered, message) if t)
        tab.unanswered, tab.notice, tab.images = message, None, tab.images + images
        tab.sent = _sequence(sequence, tab.sent + 1)
        return tab, messages_for(tab), None

    def stop(self, state: Any, sequence: Any, request: gr.Request) -> None:
        """Stop: the reply to the page's latest message ends at its next update (or before it starts)."""
        owner = caller(request)
        if isinstance(state, Tab) and self.conversations.owns(owner, state.session):
            state.stop_at = max(state.stop_at, _sequence(sequence, state.sent))

    def respond(
        self,
        state: Any,
        model: Any,
        temperature: Any,
        top_p: Any,
        max_tokens: Any,
        system_prompt: Any,
        thinking: Any,
        request: gr.Request,
    ) -> Iterator[tuple]:
        owner = caller(request)
        if not (isinstance(state, Tab) and self.conversations.owns(owner, state.session)):
            return  # nothing of the caller's to answer (no accepted message in this tab)
        tab = state
        if tab.unanswered is None:
            return
        if tab.stop_at >= tab.sent:  # Stop came before the reply began: nothing is sent, nothing stored
            yield self._taken_back(owner, tab)
            return
        try:
            ask = self.conversations.check(
                tab.unanswered, model, temperature, top_p, max_tokens, system_prompt, tab.images, thinking
            )
        except InputError as exc:
            log.info("message refused: %s", exc)
            tab.notice = str(exc)
            yield tab, messages_for(tab), gr.update(), gr.update()
            return
        turns_before = tab.session.turns
        thought = ""
        try:
            with contextlib.closing(self.conversations.reply(owner, tab.session, ask)) as updates:
                for update in updates:
                    if update.done:
                        yield (*self._finish(owner, tab, update), gr.update())
                        return
                    thought = update.thinking
                    if tab.stop_at >= tab.sent:
                        break  # closing the reply stores what has streamed (ChatService.reply)
                    yield tab, messages_for(tab, update.text, update.thinking), gr.update(), gr.update()
            # Stopped: what was stored is what the page shows from now on, with what the model thought so far.
            stored = tab.session.messages[-1].content if tab.session.turns > turns_before else ""
            yield (*self._finish(owner, tab, Update(stored, thinking=thought, done=True)), gr.update())
        finally:
            # Should the page go away mid-reply, the partial reply was still saved as a turn: the message is
            # answered, so it must not be glued onto the user's next message.
            if tab.session.turns > turns_before:
                tab.unanswered, tab.images = None, ()

    def _taken_back(self, owner: str, tab: Tab) -> tuple:
        """A message stopped before its reply began goes back into the message box (its images go)."""
        text, tab.unanswered = tab.unanswered or "", None
        with contextlib.suppress(ConversationError):  # a failed message kept for a reload is taken back too
            self.conversations.forget_unanswered(owner, tab.session)
        self.conversations.forget_images(owner, tab.session, tab.images)
        note = " Attach its images again." if tab.images else ""
        tab.images, tab.notice = (), f"Stopped before the reply began: your message is back in the box.{note}"
        return tab, messages_for(tab), gr.update(), {"text": text, "files": []}

    def _keep_unanswered(self, owner: str, tab: Tab, error: str) -> None:
        """Store the failed message so a reload still shows it; list a conversation that has nothing else."""
        assert tab.unanswered is not None
        if not self.conversations.remember_unanswered(owner, tab.session, tab.unanswered, error):
            return
        session_id = tab.session.session_id
        if all(sid != session_id for _, sid in tab.sidebar):
            entry = Summary(session_id, title_of(tab.unanswered), datetime.now(UTC), tab.session.turns)
            tab.sidebar = [*sidebar_choices([entry]), *tab.sidebar]

    def _finish(self, owner: str, tab: Tab, update: Update) -> tuple:
        tab.notice = update.notice
        tab.answered = update.answered_note
        session_id = tab.session.session_id
        listed = any(sid == session_id for _, sid in tab.sidebar)
        if update.text.strip():
            tab.unanswered, tab.images = None, ()  # the turn is now part of tab.session
            if update.thinking and tab.session.messages:
                tab.thinking[len(tab.session.messages) - 1] = (tab.session.messages[-1], update.thinking)
        elif update.notice and tab.unanswered is not None:
            self._keep_unanswered(owner, tab, update.notice)
        sidebar = gr.update()
        # A conversation is listed once it has a turn; checked on every reply, not just the first, because a
        # first reply cut short by stop never gets here.
        if tab.session.turns and all(sid != session_id for _, sid in tab.sidebar):
            tab.sidebar = [*sidebar_choices([self.conversations.summary_of(tab.session)]), *tab.sidebar]
        if not listed and any(sid == session_id for _, sid in tab.sidebar):
            sidebar = gr.update(choices=tab.sidebar, value=session_id)
        return tab, messages_for(tab), sidebar

    def after_reply(self, state: Any, request: gr.Request) -> tuple[str, str]:
        """Which model answered the last reply (for Auto) and the caller's usage today, once a reply is done."""
        owner = caller(request)
        tab = self._tab(state, owner)
        note = tab.answered if tab is state else None
        return (safe_markdown(f"↪ {note}") if note else ""), self.usage_line(request)

    def usage_line(self, request: gr.Request) -> str:
        return safe_markdown(self.conversations.usage_line(caller(request)))

    def retry(self, state: Any, sequence: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        if tab.unanswered is None:
            last = next((m for m in reversed(tab.session.messages) if m.role == "user"), None)
            with people_errors("retry"):
                tab.unanswered = self.conversations.retry(owner, tab.session)
            tab.images = last.images if last is not None and tab.unanswered is not None else ()
        tab.notice = None
        tab.sent = _sequence(sequence, tab.sent + 1)
        return tab, messages_for(tab)

    def undo(self, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        tab.notice = None
        if tab.unanswered is not None:
            with people_errors("undo"):
                self.conversations.forget_unanswered(owner, tab.session)
            text, tab.unanswered = tab.unanswered, None
            self.conversations.forget_images(owner, tab.session, tab.images)
            tab.images = ()
            sidebar = gr.update()
            if tab.session.turns == 0:  # it held only that message: the store deleted it
                tab.sidebar = [c for c in tab.sidebar if c[1] != tab.session.session_id]
                sidebar = gr.update(choices=tab.sidebar, value=None)
            return tab, messages_for(tab), {"text": text, "files": []}, sidebar
        with people_errors("undo"):
            text = self.conversations.undo(owner, tab.session)
        sidebar = gr.update()
        if tab.session.turns == 0:  # the store deleted the now empty conversation: unlist it
            tab.sidebar = [c for c in tab.sidebar if c[1] != tab.session.session_id]
            sidebar = gr.update(choices=tab.sidebar, value=None)
        return tab, messages_for(tab), {"text": text or "", "files": []}, sidebar

    # -- rename, search, export (sidebar) ------------------------------------------------------------------

    def _open_id(self, tab: Tab) -> str:
        """The open conversation's id, once it is stored (with its first turn, or its first failed message)."""
        if not tab.session.turns and not any(sid == tab.session.session_id for _, sid in tab.sidebar):
            raise gr.Error("Send a message first: a conversation is saved with its first reply.", print_exception=False)
        return tab.session.session_id

    def rename_open(self, title: Any, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("rename"):
            renamed = self.conversations.rename(owner, self._open_id(tab), title)
        (entry,) = sidebar_choices([renamed])
        tab.sidebar = [entry if sid == renamed.id else (label, sid) for label, sid in tab.sidebar]
        return tab, gr.update(choices=tab.sidebar, value=renamed.id), ""

    def search_sidebar(self, query: Any, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("search"):
            found = self.conversations.search(owner, query) if isinstance(query, str) and query.strip() else None
        # An emptied search box shows the whole list again.
        choices = tab.sidebar if found is None else search_choices(found)
        listed = any(sid == tab.session.session_id for _, sid in choices)
        return tab, gr.update(choices=choices, value=tab.session.session_id if listed else None)

    def export_open(self, format: Any, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("export"):
            exported = self.conversations.export(owner, self._open_id(tab), format)
        return tab, exported.as_dict()

    # -- the API -----------------------------------------------------------------------------------------

    def api_chat(
        self,
        message: Any,
        model: Any,
        temperature: Any,
        top_p: Any,
        max_tokens: Any,
        system_prompt: Any,
        state: Any,
        request: gr.Request,
    ) -> Iterator[tuple[str, Tab]]:
        """One turn for `gradio_client` callers; the conversation continues across calls of one client."""
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("/chat"):
            text, paths = message_parts(message)
            tab.images = ()
            images = self._attach(owner, tab, paths)
            try:
                ask = self.conversations.check(text, model, temperature, top_p, max_tokens, system_prompt, images)
            except InputError:  # a bad setting: the images stored for this message go again
                self.conversations.forget_images(owner, tab.session, images)
                raise
        with contextlib.closing(self.conversations.reply(owner, tab.session, ask)) as updates:
            for update in updates:
                reply = update.text
                if update.answered_note and reply:
                    reply = f"{reply}\n\nℹ️ {update.answered_note}"
                if update.notice:
                    reply = f"{reply}\n\n⚠️ {update.notice}" if reply else f"⚠️ {update.notice}"
                yield reply, tab

    def api_resume(self, conversation_id: Any, state: Any, request: gr.Request) -> tuple[list[dict[str, Any]], Tab]:
        """Continue one of the caller's conversations; returns its messages."""
        owner = caller(request)
        with people_errors("/resume"):
            session = self.conversations.resume(owner, conversation_id)
        return [_api_message(m) for m in session.messages], Tab(session)

    def api_conversations(self, request: gr.Request) -> list[dict[str, Any]]:
        """The caller's conversations, newest first."""
        owner = caller(request)
        with people_errors("/conversations"):
            return [c.as_dict() for c in self.conversations.list(owner)]

    def api_usage(self, request: gr.Request) -> dict[str, Any]:
        """The caller's token usage today: tokens_today, limit (None = none), resets_at (UTC)."""
        return self.conversations.usage_report(caller(request))

    def api_delete(self, conversation_id: Any, state: Any, request: gr.Request) -> tuple[dict[str, Any], Tab]:
        """Delete one of the caller's conversations; a client that had it open starts a new one."""
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("/delete"):
            self.conversations.delete(owner, conversation_id)
        if tab.session.session_id == conversation_id:
            tab = Tab(self.conversations.start(owner))
        return {"deleted": conversation_id}, tab

    def api_rename(self, conversation_id: Any, title: Any, request: gr.Request) -> dict[str, Any]:
        """Rename one of the caller's conversations; returns its new list entry."""
        owner = caller(request)
        with people_errors("/rename"):
            return self.conversations.rename(owner, conversation_id, title).as_dict()

    def api_search(self, query: Any, request: gr.Request) -> list[dict[str, Any]]:
        """The caller's conversations matching `query`, newest first, each with the excerpt that matched."""
        owner = caller(request)
        with people_errors("/search"):
            return [found.as_dict() for found in self.conversations.search(owner, query)]

    def api_export(self, conversation_id: Any, format: Any, request: gr.Request) -> dict[str, str]:
        """One of the caller's conversations as `markdown` or `json`: {filename, mime_type, content}."""
        owner = caller(request)
        with people_errors("/export"):
            return self.conversations.export(owner, conversation_id, format).as_dict()

    # -- layout ------------------------------------------------------------------------------------------

    def build(self, title: str = "hybrid-chat") -> gr.Blocks:
        labels = self.conversations.models
        gradio_compat.lazy_session_config()  # a new session no longer configures this whole page first
        # delete_cache: uploads never sent (a closed tab) leave Gradio's cache within two hours; sent ones are
        # deleted as soon as they are copied to the media store.
        with gr.Blocks(title=title, fill_height=True, delete_cache=(UPLOAD_EXPIRY_S, UPLOAD_EXPIRY_S)) as demo:
            tab = gr.State(None, time_to_live=TAB_TTL_S)
            sequence = gr.Number(visible=False, precision=0)  # the page's message number (SEND_JS)
            browser = gr.BrowserState({"session_id": None}, storage_key=BROWSER_STORAGE_KEY, secret=BROWSER_STATE_KEY)
            with gr.Sidebar(label="Conversations"):
                who = gr.HTML(elem_id="signed-in")
                new_button = gr.Button("➕ New chat", variant="primary", elem_id="new-chat")
                search_box = gr.Textbox(
                    placeholder="Search your conversations", show_label=False, elem_id="search", max_lines=1
                )
                sessions = gr.Radio(choices=[], label="Past conversations", elem_id="sessions")
                with gr.Accordion("This conversation", open=False, elem_id="manage"):
                    with gr.Row():
                        title_box = gr.Textbox(
                            placeholder="A new title", show_label=False, max_lines=1, scale=3, elem_id="rename-title"
                        )
                        rename_button = gr.Button("Rename", scale=1, elem_id="rename")
                    with gr.Row():
                        export_format = gr.Radio(
                            EXPORT_FORMATS, value="markdown", show_label=False, scale=3, elem_id="export-format"
                        )
                        export_button = gr.Button("Download", scale=1, elem_id="export")
                    exported = gr.JSON(visible=False)
                delete_button = gr.Button("🗑️ Delete this conversation", variant="stop", elem_id="delete-chat")
                with gr.Row(visible=False, elem_id="confirm-delete-row") as confirm_row:
                    confirm = gr.Button("Delete for good", variant="stop", elem_id="confirm-delete")
                    keep = gr.Button("Keep it", elem_id="keep-chat")
                gr.Markdown("**Models**")
                # Filled by the page's load event, so every page load shows the latest check.
                status = gr.Markdown(elem_id="model-status")
                usage_today = gr.Markdown(elem_id="usage-today")
            # allow_tags=False: no custom tag survives either (message text is escaped before it gets here).
            chatbot = gr.Chatbot(
                label="Chat", elem_id="chatbot", scale=1, height="60vh", buttons=["copy"], allow_tags=False
            )
            answered = gr.Markdown(elem_id="answered-by")
            with gr.Row():
                textbox = gr.MultimodalTextbox(
                    placeholder="Type a message and press Enter; attach up to 5 images (PNG, JPEG, WebP, GIF)",
                    show_label=False,
                    scale=8,
                    elem_id="message",
                    file_types=["image"],
                    file_count="multiple",
                    sources=["upload"],
                    submit_btn=False,
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            first = self.conversations.options(labels[0])
            with gr.Accordion("Model and settings", open=True):
                model = gr.Dropdown(labels, value=labels[0], label="Model", elem_id="model")
                with gr.Row():
                    temperature = gr.Slider(
                        *TEMPERATURE_RANGE,
                        value=first.temperature,
                        step=0.05,
                        label="Temperature",
                        elem_id="temperature",
                    )
                    top_p = gr.Slider(*TOP_P_RANGE, value=first.top_p, step=0.01, label="Top-p", elem_id="top-p")
                    max_tokens = gr.Slider(
                        *MAX_TOKENS_RANGE, value=first.max_tokens, step=1, label="Max tokens", elem_id="max-tokens"
                    )
                    thinking = gr.Dropdown(
                        list(first.thinking_levels),
                        value=first.thinking,
                        label="Thinking",
                        visible=bool(first.thinking_levels),
                        elem_id="thinking",
                    )
                model_note = gr.Markdown(first.note, elem_id="model-note")
                system_prompt = gr.Textbox(label="System prompt", lines=2, elem_id="system-prompt")
            # The /chat API's inputs; the thinking level is the page's only (an API call gets the model's default).
            controls = [model, temperature, top_p, max_tokens, system_prompt]
            model.change(
                self.model_controls,
                [model],
                [temperature, top_p, max_tokens, thinking, model_note],
                queue=False,
                api_visibility="private",
            )
            private: dict[str, Any] = {"api_visibility": "private"}

            loading = demo.load(self.load, [browser], [tab, browser, chatbot, sessions, who, status], **private)
            # Browser-only marker that the page knows its owner and conversation: before that, a message would
            # start a conversation the sidebar never lists. Tests wait for it instead of guessing a delay.
            loading.then(None, js=READY_JS, **private)
            gr.Timer(10).tick(self.model_status, None, status, queue=False, **private)
            loading.then(self.usage_line, None, usage_today, **private)

            # Queued, because only queued events carry a gr.Error's message to the browser (an unqueued one shows
            # a bare "Error"); no progress overlay, which on error would cover the chat and the message box.
            sending = gr.on(
                [textbox.submit, send.click],
                self.accept,
                [textbox, tab, browser, sequence],
                [tab, chatbot, textbox],
                js=SEND_JS % 3,
                show_progress="hidden",
                **private,
            )
            replied = [tab, chatbot, sessions, textbox]
            streaming = sending.success(self.respond, [tab, *controls, thinking], replied, **private)
            retrying = chatbot.retry(
                self.retry, [tab, sequence], [tab, chatbot], js=SEND_JS % 1, queue=False, **private
            )
            restreaming = retrying.success(self.respond, [tab, *controls, thinking], replied, **private)
            # Not Gradio's `cancels`: see Tab.stop_at. Unqueued, so it takes effect while replies stream.
            stop.click(self.stop, [tab, sequence], None, js=STOP_JS, queue=False, show_progress="hidden", **private)
            for replying in (streaming, restreaming):
                replying.then(self.after_reply, [tab], [answered, usage_today], **private)
            # Queued so that its gr.Error (store unreachable) reaches the browser.
            chatbot.undo(self.undo, [tab], [tab, chatbot, textbox, sessions], **private)

            fresh = [tab, browser, chatbot, sessions]
            new_button.click(self.new_chat, [tab], fresh, queue=False, **private)
            # The Chatbot's own clear (trash) icon empties the screen: it starts a new conversation too, so
            # the model never sees a conversation the person no longer does.
            chatbot.clear(self.new_chat, [tab], fresh, queue=False, **private)
            # preprocess=False: the Radio's own check of an id it does not list answers with a Python type repr;
            # `resume` checks the id itself (and whose it is).
            sessions.input(
                self.resume, [sessions, tab], [tab, browser, chatbot], api_name="open", preprocess=False, **private
            )
            delete_button.click(self.ask_delete, None, [delete_button, confirm_row], queue=False, **private)
            keep.click(self.keep, None, [delete_button, confirm_row], queue=False, **private)
            confirm.click(self.confirm_delete, [tab], [*fresh, delete_button, confirm_row], **private)
            gr.on(
                [title_box.submit, rename_button.click],
                self.rename_open,
                [title_box, tab],
                [tab, sessions, title_box],
                **private,
            )
            # Queued (a gr.Error reaches the browser); the last keystroke wins while typing. `change`, not
            # `input`: clearing the box (select all, delete) must show the whole list again.
            search_box.change(
                self.search_sidebar,
                [search_box, tab],
                [tab, sessions],
                trigger_mode="always_last",
                show_progress="hidden",
                **private,
            )
            export_button.click(self.export_open, [export_format, tab], [tab, exported], **private).success(
                None, [exported], None, js=DOWNLOAD_JS, **private
            )

            # API-only endpoints, wired to hidden components so their inputs are exactly the visible controls.
            api_reply = gr.Textbox(visible=False)
            # Text, or {"text": …, "files": [handle_file(…), …]}: a JSON input takes both forms.
            api_message = gr.JSON(visible=False, label="message")
            api_conversation_id = gr.Textbox(visible=False)
            api_json = gr.JSON(visible=False)
            # preprocess=False: the sliders' and dropdown's own checks would answer a bad value with a message
            # that names no control ("Could not preprocess input component at index 2"); ours name it.
            hidden = gr.Button(visible=False)
            hidden.click(
                self.api_chat, [api_message, *controls, tab], [api_reply, tab], api_name="chat", preprocess=False
            )
            hidden.click(
                self.api_resume, [api_conversation_id, tab], [api_json, tab], api_name="resume", preprocess=False
            )
            hidden.click(self.api_conversations, None, api_json, api_name="conversations")
            hidden.click(self.api_usage, None, api_json, api_name="usage")
            hidden.click(
                self.api_delete, [api_conversation_id, tab], [api_json, tab], api_name="delete", preprocess=False
            )
            api_text = gr.Textbox(visible=False)
            hidden.click(
                self.api_rename, [api_conversation_id, api_text], api_json, api_name="rename", preprocess=False
            )
            hidden.click(self.api_search, [api_text], api_json, api_name="search", preprocess=False)
            hidden.click(
                self.api_export, [api_conversation_id, api_text], api_json, api_name="export", preprocess=False
            )
        return demo


def _sequence(value: Any, default: int) -> int:
    """The page's message number (SEND_JS); `default` when a client sends none or nonsense."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**53:
        return default
    return int(value)


def _api_message(message: Message) -> dict[str, Any]:
    out = {"role": message.role, "content": message.content, "model": message.model}
    if message.images:
        out["images"] = [i.as_dict() for i in message.images]
    return out
