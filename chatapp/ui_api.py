"""The API endpoints (`/chat`, `/resume`, `/conversations`, `/usage`, `/delete`, `/rename`, `/search`,
`/export`) for `gradio_client` callers. Each derives the caller from its request; `/chat` takes the same route
as the page's Send (`OpenConversation.accept`, then `reply`), and a client's conversation continues across its
calls (its `gr.State`)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import gradio as gr

from chatapp.conversation import Message
from chatapp.conversations import Controls, Conversations
from chatapp.identity import caller
from chatapp.inputs import InputError
from chatapp.open_conversation import OpenConversation
from chatapp.ui_events import CallersUploads, message_parts, people_errors
from chatapp.ui_render import Tab


class ApiHandlers:
    def __init__(self, conversations: Conversations, uploads: CallersUploads) -> None:
        self.conversations = conversations
        self.uploads = uploads

    def _tab(self, state: Any, owner: str) -> Tab:
        """The client's own conversation; anything else (none yet, or another caller's) starts a new one."""
        if isinstance(state, Tab) and state.conversation.belongs_to(owner):
            return state
        return Tab(OpenConversation.start(self.conversations, owner, keeps_failed=False))

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
        conversation = tab.conversation
        with people_errors("/chat"):
            text, paths = message_parts(message)
            conversation.accept(text, paths, self.uploads)
            try:
                updates = conversation.reply(Controls(model, temperature, top_p, max_tokens, system_prompt))
                first = next(updates, None)  # a bad setting is refused here, before anything is sent
            except InputError:  # the message and the images stored for it go again
                conversation.take_back()
                raise
        if first is None:
            return
        with contextlib.closing(updates):
            for n, update in enumerate(itertools.chain([first], updates)):
                reply = update.text
                if update.answered_note and reply:
                    reply = f"{reply}\n\nℹ️ {update.answered_note}"
                if update.notice:
                    reply = f"{reply}\n\n⚠️ {update.notice}" if reply else f"⚠️ {update.notice}"
                # The client's state is set with the first update (a client gone mid-reply still goes on in this
                # conversation) and the last; Gradio rebuilds a State's configuration each time it is set.
                yield reply, (tab if n == 0 or update.done else gr.skip())

    def api_resume(self, conversation_id: Any, state: Any, request: gr.Request) -> tuple[list[dict[str, Any]], Tab]:
        """Continue one of the caller's conversations; returns its messages."""
        owner = caller(request)
        with people_errors("/resume"):
            session = self.conversations.resume(owner, conversation_id)
        conversation = OpenConversation(self.conversations, owner, session, stored=True, keeps_failed=False)
        return [_api_message(m) for m in session.messages], Tab(conversation)

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
        if tab.conversation.id == conversation_id:
            tab = Tab(OpenConversation.start(self.conversations, owner, keeps_failed=False))
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


def _api_message(message: Message) -> dict[str, Any]:
    out = {"role": message.role, "content": message.content, "model": message.model}
    if message.images:
        out["images"] = [i.as_dict() for i in message.images]
    return out
