"""What the page shows: the per-tab state (`Tab`) and how a conversation, the sidebar and the signed-in line
are rendered for Gradio's components. Message text is made inert (`safe_markdown`) before the Chatbot renders
it."""

from __future__ import annotations

import functools
import html
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from chatapp.conversation import ImageRef, Message
from chatapp.conversations import Found, Summary
from chatapp.open_conversation import OpenConversation
from chatapp.safe_markdown import safe_markdown
from chatapp.ui_events import sequence_of

IAP_SIGN_OUT = "/?gcp-iap-mode=CLEAR_LOGIN_COOKIE"
PASSWORD_SIGN_OUT = "/logout"


@dataclass
class Tab:
    """Per-tab server state: the open conversation, and what only this page shows of it."""

    conversation: OpenConversation
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
    # its sends (chatapp.ui.SEND_JS): `sent` is the number of the message being answered, `stop_at` the number
    # the page had sent when Stop was pressed. A reply whose number is at most `stop_at` ends at its next
    # update, even when the Stop reached the server before the message did.
    sent: int = 0
    stop_at: int = -1
    # Names this state object to the page (`shown`): a page that comes back carrying another key was served by
    # another replica (or another state) meanwhile, so this state may be out of date (PageHandlers._tab).
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Conversation switches (New chat, a sidebar entry, Delete), numbered by the page (chatapp.ui.SWITCH_JS) as
    # its sends are: the number of the last one applied to this tab's page, and the state that replaced this one
    # then. A Send pressed right after a switch can reach the server first (the switch is another request): it
    # waits for the switch (`after_switch`), or it would join the old conversation, and the switch's empty chat
    # would then hide the message, never answered.
    switched: int = 0
    successor: Tab | None = field(default=None, repr=False)

    def switch(self, number: Any, to: Tab | None = None) -> None:
        """The page's switch `number` is done: `to` now serves the page (None: the switch failed, this stays)."""
        with _SWITCHES:
            done = max(self.switched, sequence_of(number, self.switched))
            if to is not None and to is not self:
                # A Stop that reached this state meanwhile is the page's: it holds for the state that serves it now.
                to.switched, to.stop_at, self.successor = max(to.switched, done), max(to.stop_at, self.stop_at), to
            self.switched = done
            _SWITCHES.notify_all()

    def stop(self, number: int) -> None:
        """Stop, pressed when the page had sent message `number`: on the state serving the page now (a switch may
        have replaced this one since the Stop's event began)."""
        with _SWITCHES:
            tab = self._serving()
            tab.stop_at = max(tab.stop_at, number)

    def after_switch(self, number: Any, timeout_s: float) -> Tab:
        """The state a Send should act on: the one serving the page once its switch `number` is done. A switch
        that never arrives (its request lost) is given up after `timeout_s`: the Send acts on what is here. So
        is a switch while MAX_WAITING_SENDS others already wait."""
        global _waiting
        wanted = sequence_of(number, 0)
        with _SWITCHES:
            # Past the cap: no wait at all. Counted all the same, which nobody sees: it holds the lock until it returns.
            deadline = time.monotonic() + (timeout_s if _waiting < MAX_WAITING_SENDS else 0.0)
            _waiting += 1
            try:
                while True:
                    tab = self._serving()
                    left = deadline - time.monotonic()
                    if tab.switched >= wanted or left <= 0:
                        tab.switched = max(tab.switched, wanted)
                        return tab
                    _SWITCHES.wait(left)
            finally:
                _waiting -= 1

    def _serving(self) -> Tab:
        """The state serving the page now: this one, or the last of the states its switches handed on to. The
        caller holds _SWITCHES."""
        tab = self
        while tab.successor is not None:
            tab = tab.successor
        return tab

    def lists(self, conversation_id: str) -> bool:
        return any(sid == conversation_id for _, sid in self.sidebar)

    def shown(self) -> dict[str, Any]:
        """What the page keeps of what it shows (its `gr.BrowserState`) and sends back with Send, Retry, Undo
        and Delete: the conversation's id, which state last served it, and whether it was ever stored."""
        return {"session_id": self.conversation.id, "tab": self.key, "stored": self.conversation.stored}


# Guards every Tab's `switched` and `successor`, and `_waiting`; a switch wakes the Sends waiting for it.
_SWITCHES = threading.Condition()
# Sends waiting for a switch at once on this replica (`after_switch`). Each holds a worker of the Send event, and
# a switch request is rarely lost, so few wait in earnest; a client sending switch numbers it never switches to
# could otherwise hold every worker for the whole wait. Past the cap a Send acts at once on what is here.
MAX_WAITING_SENDS = 8
_waiting = 0


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
    """What the Chatbot shows of a tab's conversation, with a reply still streaming (`partial`)."""
    conversation = tab.conversation
    sid = conversation.id
    out = []
    for index, m in enumerate(conversation.session.messages):
        if m.role == "system":
            continue
        reply, thought = tab.thinking.get(index, (None, ""))
        if thought and reply is m:
            out.append(thinking_block(thought, _finished(thought)))
        out.append({"role": m.role, "content": with_images(_finished(m.content), sid, m.images)})
    if conversation.unanswered is not None:
        shown = safe_markdown(conversation.unanswered)
        out.append({"role": "user", "content": with_images(shown, sid, conversation.images)})
    if thinking:
        out.append(thinking_block(thinking))
    if partial:
        out.append({"role": "assistant", "content": safe_markdown(partial)})
    if conversation.notice:
        out.append({"role": "assistant", "content": safe_markdown(f"⚠️ {conversation.notice}")})
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
