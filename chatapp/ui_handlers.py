"""The page's event handlers: each derives the caller from the request it handles (`identity.caller`), finds
the tab's `OpenConversation` (or rebuilds it, see `_tab`), asks it to act, and renders the result.

Gradio keys `gr.State` by the client-supplied `session_hash` alone, so per-tab state whose conversation belongs
to someone else is discarded, never used. A tab this server holds nothing for (its state expired, or the
page's events now reach another replica) is rebuilt from the conversation the page shows (`gr.BrowserState`,
sent with Send, Retry, Undo and Delete), checked against the caller like any other data, with a toast saying
so: no action ever lands silently on a conversation other than the one on screen.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from chatapp.chat import Update
from chatapp.conversations import Controls, ConversationError, Conversations
from chatapp.identity import caller
from chatapp.inputs import InputError
from chatapp.open_conversation import OpenConversation
from chatapp.safe_markdown import safe_markdown
from chatapp.status import ModelStatus
from chatapp.ui_events import (
    CallersUploads,
    message_parts,
    people_errors,
    sequence_of,
    shown_by,
    shown_id,
    shown_stored,
)
from chatapp.ui_render import Tab, messages_for, search_choices, sidebar_choices, signed_in_as

log = logging.getLogger("chatapp.ui")

# How long a Send waits for the conversation switch the page made just before it (New chat, a sidebar entry,
# Delete) to reach the server. Past it the switch request is taken as lost, and the message joins the
# conversation the server holds.
SWITCH_WAIT_S = 15.0
NOT_STORED = "Send a message first: a conversation is saved with its first reply."


class PageHandlers:
    def __init__(self, conversations: Conversations, status: ModelStatus, uploads: CallersUploads) -> None:
        self.conversations = conversations
        self.status = status
        self.uploads = uploads

    def _tab(self, state: Any, owner: str, browser: Any = None) -> Tab:
        """The caller's own per-tab state. None yet (a replica or a restart that never saw this tab, or state
        expired): the conversation the page shows (`browser`), rebuilt from the store. Out of date (the page
        carries the key of another state: another replica served it meanwhile, e.g. the load balancer moved it
        there and back): rebuilt too, so no action uses older turns (a Send would overwrite the turn stored
        there, and the model would miss it). Someone else's (a replayed session): discarded for a new
        conversation of the caller."""
        if isinstance(state, Tab) and state.conversation.belongs_to(owner):
            if shown_by(browser) in (None, state.key):
                return state  # the common case: no store read
            log.info("per-tab state older than what the page shows (served elsewhere meanwhile): rebuilt")
            return self._recover(owner, browser, announce=False)
        if state is not None:
            log.warning("discarded per-tab state that belongs to another caller")
            return Tab(OpenConversation.start(self.conversations, owner))
        return self._recover(owner, browser, announce=True)

    def _recover(self, owner: str, browser: Any, announce: bool) -> Tab:
        shown = shown_id(browser)
        if shown is None:
            return Tab(OpenConversation.start(self.conversations, owner))
        with people_errors("recover"):
            recovered = OpenConversation.recover(
                self.conversations, owner, shown, gr.Warning, saved=shown_stored(browser), announce=announce
            )
        return Tab(recovered, sidebar=self._sidebar(owner))

    def _sidebar(self, owner: str) -> list[tuple[str, str]]:
        try:
            return sidebar_choices(self.conversations.list(owner))
        except ConversationError as exc:
            gr.Warning(str(exc))
            return []

    def _opened(self, owner: str, conversation: OpenConversation) -> Tab:
        return Tab(conversation, sidebar=self._sidebar(owner))

    # -- conversation lifecycle --------------------------------------------------------------------------

    def load(self, browser: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        try:
            conversation = OpenConversation.reopen(self.conversations, owner, shown_id(browser))
        except ConversationError as exc:
            gr.Warning(str(exc))
            conversation = OpenConversation.start(self.conversations, owner)
        tab = self._opened(owner, conversation)
        return (
            tab,
            tab.shown(),
            messages_for(tab),
            gr.update(choices=tab.sidebar, value=conversation.id if tab.lists(conversation.id) else None),
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

    @staticmethod
    def _switch(old: Tab, number: Any, to: Callable[[], Tab]) -> Tab:
        """A conversation switch of the page (SWITCH_JS numbers it): the Tab `to()` makes replaces `old`; a Send
        waiting for the switch goes on with it, or with `old` when `to()` failed (and its error is raised)."""
        tab: Tab | None = None
        try:
            tab = to()
            return tab
        finally:
            old.switch(number, tab)

    def new_chat(self, state: Any, switch: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        old = self._tab(state, owner)

        def fresh() -> Tab:
            conversation = OpenConversation.start(self.conversations, owner)
            return Tab(conversation, sidebar=old.sidebar if old is state else self._sidebar(owner))

        tab = self._switch(old, switch, fresh)
        return tab, tab.shown(), [], gr.update(choices=tab.sidebar, value=None)

    def resume(self, conversation_id: Any, state: Any, switch: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        old = self._tab(state, owner)

        def opened() -> Tab:
            conversation = OpenConversation.open(self.conversations, owner, conversation_id)
            return Tab(conversation, sidebar=old.sidebar if old is state else self._sidebar(owner))

        with people_errors("resume"):
            tab = self._switch(old, switch, opened)
        return tab, tab.shown(), messages_for(tab)

    def ask_delete(self, request: gr.Request) -> tuple:
        caller(request)
        return gr.update(visible=False), gr.update(visible=True)

    def keep(self, request: gr.Request) -> tuple:
        caller(request)
        return gr.update(visible=True), gr.update(visible=False)

    def confirm_delete(self, state: Any, browser: Any, switch: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        old = self._tab(state, owner, browser)

        def emptied() -> Tab:
            old.conversation.discard()
            return self._opened(owner, OpenConversation.start(self.conversations, owner))

        with people_errors("delete"):
            tab = self._switch(old, switch, emptied)
        return (
            tab,
            tab.shown(),
            [],
            gr.update(choices=tab.sidebar, value=None),
            gr.update(visible=True),
            gr.update(visible=False),
        )

    # -- sending -----------------------------------------------------------------------------------------

    def accept(self, text: Any, state: Any, browser: Any, sequence: Any, switch: Any, request: gr.Request) -> tuple:
        """Check the message, show it at once, and clear the box; the reply streams in `respond`. It goes to the
        conversation of the page's last switch (`switch`, SWITCH_JS), which may reach the server after it."""
        owner = caller(request)
        tab = self._tab(state, owner, browser)
        # A state rebuilt from the store holds what the page shows: no switch of the page is still to come.
        tab = tab.after_switch(switch, SWITCH_WAIT_S if tab is state else 0)
        with people_errors("message"):
            text, paths = message_parts(text)
            tab.conversation.accept(text, paths, self.uploads)
        tab.sent = sequence_of(sequence, tab.sent + 1)
        return tab, messages_for(tab), None, tab.shown()

    def stop(self, state: Any, sequence: Any, request: gr.Request) -> None:
        """Stop: the reply to the page's latest message ends at its next update (or before it starts)."""
        owner = caller(request)
        if isinstance(state, Tab) and state.conversation.belongs_to(owner):
            state.stop(sequence_of(sequence, state.sent))

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
        if not (isinstance(state, Tab) and state.conversation.belongs_to(owner)):
            return  # nothing of the caller's to answer (no accepted message in this tab)
        tab, conversation = state, state.conversation
        if conversation.unanswered is None:
            return
        if tab.stop_at >= tab.sent:  # Stop came before the reply began: nothing is sent, nothing stored
            yield self._taken_back(tab)
            return
        controls = Controls(model, temperature, top_p, max_tokens, system_prompt, thinking)
        try:
            with contextlib.closing(conversation.reply(controls, stop=lambda: tab.stop_at >= tab.sent)) as updates:
                for update in updates:
                    if update.done and update.stopped and not update.text.strip():
                        yield self._taken_back(tab)  # stopped before any text: nothing was stored
                        return
                    if update.done:
                        yield (*self._finish(tab, update), gr.update(), tab.shown())
                        return
                    # The tab is set already (by `accept`): setting it again per update costs Gradio a rebuild.
                    yield gr.skip(), messages_for(tab, update.text, update.thinking), gr.skip(), gr.skip(), gr.skip()
        except InputError as exc:  # a bad setting: the message stays, with what to change
            log.info("message refused: %s", exc)
            conversation.notice = str(exc)
            yield tab, messages_for(tab), gr.update(), gr.update(), tab.shown()

    def _taken_back(self, tab: Tab) -> tuple:
        """A message Stop ended before any text goes back into the message box."""
        text = tab.conversation.take_back()
        return tab, messages_for(tab), gr.update(), {"text": text, "files": []}, tab.shown()

    def _finish(self, tab: Tab, update: Update) -> tuple:
        conversation = tab.conversation
        tab.answered = update.answered_note
        messages = conversation.session.messages
        if update.thinking and update.text.strip() and messages:
            tab.thinking[len(messages) - 1] = (messages[-1], update.thinking)
        sidebar = gr.update()
        # Listed once stored; checked on every reply, not just the first (a first reply cut short by stop, or a
        # failed first message kept for a reload, is stored too).
        if conversation.stored and not tab.lists(conversation.id):
            tab.sidebar = [*sidebar_choices([conversation.describe()]), *tab.sidebar]
            sidebar = gr.update(choices=tab.sidebar, value=conversation.id)
        return tab, messages_for(tab), sidebar

    def after_reply(self, state: Any, request: gr.Request) -> tuple[str, str]:
        """Which model answered the last reply (for Auto) and the caller's usage today, once a reply is done."""
        owner = caller(request)
        tab = self._tab(state, owner)
        note = tab.answered if tab is state else None
        return (safe_markdown(f"↪ {note}") if note else ""), self.usage_line(request)

    def usage_line(self, request: gr.Request) -> str:
        return safe_markdown(self.conversations.usage_line(caller(request)))

    def retry(self, state: Any, browser: Any, sequence: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner, browser)
        with people_errors("retry"):
            tab.conversation.retry()
        tab.sent = sequence_of(sequence, tab.sent + 1)
        return tab, messages_for(tab), tab.shown()

    def undo(self, state: Any, browser: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner, browser)
        with people_errors("undo"):
            text = tab.conversation.undo()
        sidebar = gr.update()
        if not tab.conversation.stored:  # the store deleted the now empty conversation: unlist it
            tab.sidebar = [c for c in tab.sidebar if c[1] != tab.conversation.id]
            sidebar = gr.update(choices=tab.sidebar, value=None)
        return tab, messages_for(tab), {"text": text, "files": []}, sidebar, tab.shown()

    # -- rename, search, export (sidebar) ------------------------------------------------------------------

    @staticmethod
    def _stored_id(tab: Tab) -> str:
        """The open conversation's id, once it is stored (with its first turn, or its first failed message)."""
        if not tab.conversation.stored:
            raise gr.Error(NOT_STORED, print_exception=False)
        return tab.conversation.id

    def rename_open(self, title: Any, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("rename"):
            renamed = self.conversations.rename(owner, self._stored_id(tab), title)
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
        listed = any(sid == tab.conversation.id for _, sid in choices)
        return tab, gr.update(choices=choices, value=tab.conversation.id if listed else None)

    def export_open(self, format: Any, state: Any, request: gr.Request) -> tuple:
        owner = caller(request)
        tab = self._tab(state, owner)
        with people_errors("export"):
            exported = self.conversations.export(owner, self._stored_id(tab), format)
        return tab, exported.as_dict()
