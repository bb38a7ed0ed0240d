"""The Gradio 6 interface: chat, model switch, generation controls, and a sidebar of past conversations.

`ChatSession` (server side, per tab) is the source of truth for what the models see; the Chatbot only shows it.
A `gr.BrowserState` keeps this browser's anonymous owner id and the open conversation across page reloads
(Gradio's session_hash changes on every load). With sign-in, conversations belong to the user name instead.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from chatapp.chat import ChatService, ChatSession, Update
from chatapp.conversation import to_gradio
from chatapp.history.base import TITLE_CHARS, ChatStore, SessionNotFound, SessionSummary, StoreError
from chatapp.identity import caller
from chatapp.inputs import InputError, clean_message, clean_params, clean_system_prompt
from chatapp.models.base import MAX_TOKENS_RANGE, TEMPERATURE_RANGE, TOP_P_RANGE
from chatapp.status import ModelStatus

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
BROWSER_STORAGE_KEY = "hybrid-chat"
SIDEBAR_LIMIT = 50


@dataclass
class Tab:
    """Per-tab server state: the open conversation and a reply that failed before any text arrived."""

    session: ChatSession
    unanswered: str | None = None
    notice: str | None = None
    # What this tab's sidebar lists. An event receives a Radio's value, never its choices, so a first turn
    # needs this to add its entry without dropping the others (and without reading the store again).
    sidebar: list[tuple[str, str]] = field(default_factory=list)


def owner_of(request: gr.Request | None, browser: dict[str, Any] | None) -> str:
    return caller(request)


def messages_for(tab: Tab, partial: str | None = None) -> list[dict[str, Any]]:
    shown = to_gradio(tab.session.messages)
    if tab.unanswered is not None:
        shown.append({"role": "user", "content": tab.unanswered})
    if partial is not None:
        shown.append({"role": "assistant", "content": partial})
    if tab.notice:
        shown.append({"role": "assistant", "content": f"⚠️ {tab.notice}"})
    return shown


def session_choices(sessions: list[SessionSummary]) -> list[tuple[str, str]]:
    return [(f"{s.title or 'Untitled'} · {s.updated_at:%b %d %H:%M}", s.session_id) for s in sessions]


class ChatUI:
    def __init__(
        self, service: ChatService, store: ChatStore, status: ModelStatus, browser_secret: str = "not-a-secret"
    ) -> None:
        self.service = service
        self.store = store
        self.status = status
        self.browser_secret = browser_secret

    # -- conversation lifecycle --------------------------------------------------------------------------

    def _list(self, owner: str) -> list[tuple[str, str]]:
        try:
            return session_choices(self.store.list_sessions(owner, SIDEBAR_LIMIT))
        except StoreError as exc:
            gr.Warning(f"Could not list past conversations: {exc}")
            return []

    def _open(self, owner: str, session_id: str | None) -> Tab:
        if session_id:
            try:
                return Tab(ChatSession.resumed(owner, session_id, self.store.load_messages(session_id, owner)))
            except SessionNotFound:
                pass  # never saved (no turn finished) or deleted elsewhere: start afresh
            except StoreError as exc:
                gr.Warning(f"Could not load the conversation: {exc}")
        return Tab(ChatSession(owner=owner))

    def load(self, browser: dict[str, Any] | None, request: gr.Request) -> tuple:
        browser = dict(browser or {})
        if not str(browser.get("owner", "")).startswith("browser:"):
            browser["owner"] = f"browser:{uuid.uuid4().hex}"
        owner = owner_of(request, browser)
        tab = self._open(owner, browser.get("session_id"))
        browser["session_id"] = tab.session.session_id
        choices = tab.sidebar = self._list(owner)
        selected = tab.session.session_id if any(sid == tab.session.session_id for _, sid in choices) else None
        return tab, browser, messages_for(tab), gr.update(choices=choices, value=selected)

    def new_chat(self, tab: Tab | None, browser: dict[str, Any] | None, request: gr.Request) -> tuple:
        owner = tab.session.owner if tab else owner_of(request, browser)
        tab = Tab(ChatSession(owner=owner), sidebar=tab.sidebar if tab else [])
        browser = {**(browser or {}), "session_id": tab.session.session_id}
        return tab, browser, [], gr.update(value=None)

    def _resumed(self, owner: str, session_id: Any, sidebar: list[tuple[str, str]]) -> Tab:
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            raise gr.Error("That is not a valid conversation id.")
        try:
            stored = self.store.load_messages(session_id, owner)
        except SessionNotFound:
            raise gr.Error("No such conversation (it may have been deleted).") from None
        except StoreError as exc:
            raise gr.Error(f"Could not load the conversation: {exc}") from None
        return Tab(ChatSession.resumed(owner, session_id, stored), sidebar=sidebar)

    def resume(self, session_id: Any, tab: Tab | None, browser: dict[str, Any] | None, request: gr.Request) -> tuple:
        owner = tab.session.owner if tab else owner_of(request, browser)
        tab = self._resumed(owner, session_id, tab.sidebar if tab else [])
        browser = {**(browser or {}), "session_id": session_id}
        return tab, browser, messages_for(tab)

    def delete(self, tab: Tab | None, browser: dict[str, Any] | None, request: gr.Request) -> tuple:
        if tab is not None and tab.session.turns:
            try:
                self.store.delete_session(tab.session.session_id, tab.session.owner)
            except SessionNotFound:
                pass
            except StoreError as exc:
                raise gr.Error(f"Could not delete the conversation: {exc}") from None
        tab, browser, chat, _ = self.new_chat(tab, browser, request)
        tab.sidebar = self._list(tab.session.owner)
        return tab, browser, chat, gr.update(choices=tab.sidebar, value=None)

    # -- sending -----------------------------------------------------------------------------------------

    def accept(self, text: Any, tab: Tab | None, browser: dict[str, Any] | None, request: gr.Request) -> tuple:
        """Validate the message, show it at once, and clear the box; the reply streams in `respond`."""
        try:
            message = clean_message(text)
        except InputError as exc:  # the user's mistake, not ours: a toast, no traceback in the log
            raise gr.Error(str(exc), print_exception=False) from None
        tab = tab or Tab(ChatSession(owner=owner_of(request, browser)))
        if tab.unanswered is not None:  # the previous message got no reply: it joins this one
            message = f"{tab.unanswered}\n\n{message}"
        tab.unanswered, tab.notice = message, None
        return tab, messages_for(tab), ""

    def respond(
        self,
        tab: Tab,
        model: Any,
        temperature: Any,
        top_p: Any,
        max_tokens: Any,
        system_prompt: Any,
    ) -> Iterator[tuple]:
        if tab is None or tab.unanswered is None:
            return
        try:
            self.service.model(model)
            params = clean_params(temperature, top_p, max_tokens)
            system = clean_system_prompt(system_prompt)
        except InputError as exc:
            tab.notice = str(exc)
            yield tab, messages_for(tab), gr.update()
            return
        text, turns_before = tab.unanswered, tab.session.turns
        try:
            with contextlib.closing(self.service.reply(tab.session, text, model, params, system)) as updates:
                for update in updates:
                    if update.done:
                        yield self._finish(tab, update)
                    else:
                        yield tab, messages_for(tab, update.text), gr.update()
        finally:
            # Stop cancels this generator before `_finish` runs, yet the partial reply was saved as a turn:
            # the message is answered, so it must not be glued onto the user's next message.
            if tab.session.turns > turns_before:
                tab.unanswered = None

    def _finish(self, tab: Tab, update: Update) -> tuple:
        tab.notice = update.notice
        if update.text.strip():
            tab.unanswered = None  # the turn is now part of tab.session
        sidebar = gr.update()
        session_id = tab.session.session_id
        # A conversation is listed once it has a turn; checked on every reply, not just the first, because a
        # first reply cut short by stop never gets here.
        if tab.session.turns and all(sid != session_id for _, sid in tab.sidebar):
            now = datetime.now(UTC)
            title = " ".join(tab.session.messages[0].content.split())[:TITLE_CHARS]
            summary = SessionSummary(session_id, tab.session.owner, title, now, now, tab.session.turns)
            tab.sidebar = [*session_choices([summary]), *tab.sidebar]
            sidebar = gr.update(choices=tab.sidebar, value=session_id)
        return tab, messages_for(tab), sidebar

    def retry(self, tab: Tab | None) -> tuple:
        if tab is None:
            return tab, []
        if tab.unanswered is None:
            last = tab.session.drop_last_turn()
            tab.unanswered = last.content if last else None
        tab.notice = None
        return tab, messages_for(tab)

    def undo(self, tab: Tab | None) -> tuple:
        if tab is None:
            return tab, [], "", gr.update()
        tab.notice = None
        if tab.unanswered is not None:
            text, tab.unanswered = tab.unanswered, None
            return tab, messages_for(tab), text, gr.update()
        last = tab.session.drop_last_turn()
        try:
            self.store.truncate(tab.session.session_id, tab.session.owner, tab.session.turns)
        except StoreError as exc:
            gr.Warning(f"The undone turn is still stored and will be replaced by your next message: {exc}")
        sidebar = gr.update()
        if tab.session.turns == 0:  # the store deleted the now empty conversation: unlist it
            tab.sidebar = [c for c in tab.sidebar if c[1] != tab.session.session_id]
            sidebar = gr.update(choices=tab.sidebar, value=None)
        return tab, messages_for(tab), last.content if last else "", sidebar

    # -- the `/chat` API ---------------------------------------------------------------------------------

    def api_chat(
        self,
        message: Any,
        model: Any,
        temperature: Any,
        top_p: Any,
        max_tokens: Any,
        system_prompt: Any,
        tab: Tab | None,
        request: gr.Request,
    ) -> Iterator[tuple[str, Tab]]:
        """One turn for `gradio_client` callers; the conversation continues across calls of one client."""
        try:
            text = clean_message(message)
            self.service.model(model)
            params = clean_params(temperature, top_p, max_tokens)
            system = clean_system_prompt(system_prompt)
        except InputError as exc:
            raise gr.Error(str(exc)) from None
        tab = tab or Tab(ChatSession(owner=owner_of(request, None)))
        with contextlib.closing(self.service.reply(tab.session, text, model, params, system)) as updates:
            for update in updates:
                reply = update.text
                if update.notice:
                    reply = f"{reply}\n\n⚠️ {update.notice}" if reply else f"⚠️ {update.notice}"
                yield reply, tab

    def api_resume(self, session_id: Any, tab: Tab | None, request: gr.Request) -> tuple[list[dict[str, Any]], Tab]:
        """Continue one of this API client's own conversations; returns its messages."""
        tab = self._resumed(tab.session.owner if tab else owner_of(request, None), session_id, [])
        return [{"role": m.role, "content": m.content, "model": m.model} for m in tab.session.messages], tab

    # -- layout ------------------------------------------------------------------------------------------

    def build(self, title: str = "hybrid-chat") -> gr.Blocks:
        labels = list(self.service.models)
        with gr.Blocks(title=title, fill_height=True) as demo:
            tab = gr.State(None)
            browser = gr.BrowserState(
                {"owner": None, "session_id": None}, storage_key=BROWSER_STORAGE_KEY, secret=self.browser_secret
            )
            with gr.Sidebar(label="Conversations"):
                new_button = gr.Button("➕ New chat", variant="primary", elem_id="new-chat")
                sessions = gr.Radio(choices=[], label="Past conversations", elem_id="sessions")
                delete_button = gr.Button("🗑️ Delete this conversation", variant="stop", elem_id="delete-chat")
                gr.Markdown("**Models**")
                # A callable, so every page load shows the latest check; a value would be frozen at build time
                # ("not checked yet") until the first timer tick, 10 s later.
                status = gr.Markdown(self.status.markdown, elem_id="model-status")
            chatbot = gr.Chatbot(label="Chat", elem_id="chatbot", scale=1, height="60vh", buttons=["copy"])
            with gr.Row():
                textbox = gr.Textbox(
                    placeholder="Type a message and press Enter", show_label=False, scale=8, elem_id="message"
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            with gr.Accordion("Model and settings", open=True):
                model = gr.Dropdown(labels, value=labels[0], label="Model", elem_id="model")
                with gr.Row():
                    temperature = gr.Slider(
                        *TEMPERATURE_RANGE, value=0.7, step=0.05, label="Temperature", elem_id="temperature"
                    )
                    top_p = gr.Slider(*TOP_P_RANGE, value=0.95, step=0.01, label="Top-p", elem_id="top-p")
                    max_tokens = gr.Slider(
                        *MAX_TOKENS_RANGE, value=1024, step=1, label="Max tokens", elem_id="max-tokens"
                    )
                system_prompt = gr.Textbox(label="System prompt", lines=2, elem_id="system-prompt")
            controls = [model, temperature, top_p, max_tokens, system_prompt]

            loading = demo.load(self.load, [browser], [tab, browser, chatbot, sessions], api_visibility="private")
            # Browser-only marker that the page knows its owner and conversation: before that, a message would
            # start a conversation the sidebar never lists. Tests wait for it instead of guessing a delay.
            loading.then(None, js="() => { document.body.dataset.chatReady = 'true'; }", api_visibility="private")
            gr.Timer(10).tick(self.status.markdown, None, status, api_visibility="private", queue=False)

            # Queued, because only queued events carry a gr.Error's message to the browser (an unqueued one shows
            # a bare "Error"); no progress overlay, which on error would cover the chat and the message box.
            sending = gr.on(
                [textbox.submit, send.click],
                self.accept,
                [textbox, tab, browser],
                [tab, chatbot, textbox],
                api_visibility="private",
                show_progress="hidden",
            )
            streaming = sending.success(
                self.respond, [tab, *controls], [tab, chatbot, sessions], api_visibility="private"
            )
            retrying = chatbot.retry(self.retry, [tab], [tab, chatbot], api_visibility="private", queue=False)
            restreaming = retrying.success(
                self.respond, [tab, *controls], [tab, chatbot, sessions], api_visibility="private"
            )
            stop.click(None, None, None, cancels=[streaming, restreaming], api_visibility="private", queue=False)
            # Queued so that its gr.Warning (turn still stored) reaches the browser.
            chatbot.undo(self.undo, [tab], [tab, chatbot, textbox, sessions], api_visibility="private")

            new_button.click(
                self.new_chat, [tab, browser], [tab, browser, chatbot, sessions], api_visibility="private", queue=False
            )
            sessions.input(
                self.resume,
                [sessions, tab, browser],
                [tab, browser, chatbot],
                api_name="open",
                api_visibility="private",
            )
            delete_button.click(
                self.delete, [tab, browser], [tab, browser, chatbot, sessions], api_visibility="private"
            )

            # API-only endpoints, wired to hidden components so their inputs are exactly the visible controls.
            api_reply = gr.Textbox(visible=False)
            api_session_id = gr.Textbox(visible=False)
            api_history = gr.JSON(visible=False)
            # preprocess=False: the sliders' and dropdown's own checks would answer a bad value with a message
            # that names no control ("Could not preprocess input component at index 2"); ours name it.
            gr.Button(visible=False).click(
                self.api_chat, [textbox, *controls, tab], [api_reply, tab], api_name="chat", preprocess=False
            )
            gr.Button(visible=False).click(
                self.api_resume, [api_session_id, tab], [api_history, tab], api_name="resume", preprocess=False
            )
        return demo
