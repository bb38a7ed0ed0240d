"""`POST /api/chat`: one reply streamed as NDJSON to API clients, beside Gradio's queue rather than through it.

Gradio's `/chat` costs every call a new Gradio session, a queue entry, an event id and an SSE stream of events,
all on the one event loop; on 2 cores that, not our layers, is the floor of the streaming figures (README
"Performance"). This route is a plain Starlette endpoint on the same app with the same promises:
- **Who** is the caller the Guard derived from the request (`chatapp.web`: IAP, password sign-in or the browser
  id), under the same default-deny table (`chatapp.route_rules`): no caller, 401 before this runs.
- **What it may touch** goes through `chatapp.conversations`: the same input checks (`Conversations.check`), a
  conversation id another caller owns is answered 404 exactly like one that does not exist (`resume`), and the
  reply is `Conversations.reply`, so the daily limit's reservation, the drain and the save are the chat's own.
- **Stop** is the client going away: the reply's generator is closed, which stores what streamed (as the page's
  Stop does); gone before the model's first text, the reply ends at once and nothing is stored.
- **Save, then answer:** the last line, `"done": true`, is written only once the turn is stored.

Lines, one JSON object each: `{"conversation_id", "model"}` first, then `{"delta": text}` (and `{"thinking":
text}`) as the reply grows, then `{"done": true, "text", "notice", "saved", "answered_by", "because"}`.
Refused requests get a JSON `{"error": …}` with 400 (bad input), 404 (no such conversation), 415 (not JSON) or
503 (history store down, or too many waiting).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from chatapp.asgi_io import read_body
from chatapp.chat import ChatSession, Update
from chatapp.conversations import Ask, Controls, ConversationError, Conversations, NotFound
from chatapp.inputs import InputError
from chatapp.route_rules import API_CHAT

log = logging.getLogger(__name__)

ROUTE = API_CHAT  # its rule in the front door's table: a caller, the rest checked here
MEDIA_TYPE = "application/x-ndjson"
# What a request may carry; anything else is a mistake worth naming rather than ignoring.
FIELDS = frozenset(
    {"message", "conversation_id", "model", "temperature", "top_p", "max_tokens", "system_prompt", "thinking"}
)
# Requests waiting for a slot, per slot, before more are refused (as Gradio's queue: max_size = 16 times the limit).
WAITING_PER_SLOT = 16
THREAD_HEADROOM = 16  # as chatapp.server gives Gradio's pool beyond CHAT_CONCURRENCY


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"


class ApiChat:
    """The ASGI endpoint. `concurrency` replies stream at once (CHAT_CONCURRENCY, as Gradio's queue allows
    `/chat`); later requests wait for a slot, and past WAITING_PER_SLOT times that many waiting are refused."""

    def __init__(self, conversations: Conversations, concurrency: int) -> None:
        self._conversations = conversations
        self._slots = anyio.CapacityLimiter(concurrency)
        # A reply's generator blocks its thread until its next update: one thread per stream, kept apart from
        # the pool Starlette and Gradio share, with room for checking requests while every slot streams.
        self._threads = anyio.CapacityLimiter(concurrency + THREAD_HEADROOM)
        self._max_waiting = WAITING_PER_SLOT * concurrency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = scope.get("state", {}).get("caller")
        if not isinstance(owner, str) or not owner:  # the Guard refuses first; never serve without a caller
            await error(401, "Unauthorized: sign in first.")(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != b"application/json":
            await error(415, "Send the request as JSON (Content-Type: application/json).")(scope, receive, send)
            return
        body = await read_body(receive)  # capped by the Guard (2 MiB)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            await error(400, 'The body must be a JSON object, e.g. {"message": "Hello"}.')(scope, receive, send)
            return
        try:
            session, ask = await anyio.to_thread.run_sync(self._open, owner, data, limiter=self._threads)
            latest = _Latest(asyncio.get_running_loop())
            # Lazy: nothing runs before the first update. A client gone before the model's first text ends the
            # reply at once, nothing stored (chatapp.first_chunk).
            updates = self._conversations.reply(owner, session, ask, stop=lambda: latest.stopped)
        except (InputError, NotFound) as exc:
            log.info("%s refused: %s", ROUTE, exc)
            await error(404 if isinstance(exc, NotFound) else 400, str(exc))(scope, receive, send)
            return
        except ConversationError as exc:  # the history store failed
            await error(503, str(exc))(scope, receive, send)
            return
        if self._slots.available_tokens == 0 and self._slots.statistics().tasks_waiting >= self._max_waiting:
            await error(503, "Too many replies are waiting: try again shortly.")(scope, receive, send)
            return
        async with self._slots:
            await self._stream(session, ask, updates, latest, receive, send)

    def _open(self, owner: str, data: dict[str, Any]) -> tuple[ChatSession, Ask]:
        """The request checked, and the caller's conversation it continues (or a new one)."""
        unknown = sorted(str(k) for k in set(data) - FIELDS)
        if unknown:
            raise InputError(f"Unknown field {unknown[0]!r}; send only: {', '.join(sorted(FIELDS))}.")
        label = data.get("model", self._conversations.models[0])
        defaults = self._conversations.options(label)
        controls = Controls(
            label,
            data.get("temperature", defaults.temperature),
            data.get("top_p", defaults.top_p),
            data.get("max_tokens", defaults.max_tokens),
            data.get("system_prompt", ""),
            data.get("thinking"),
        )
        ask = self._conversations.check(data.get("message"), controls)
        conversation_id = data.get("conversation_id")
        # A conversation with a reply in flight (here, on the page or in another request) is continued in the
        # same in-memory copy (Conversations.resume), so this turn takes the next index under the same lock.
        if conversation_id is None:
            return self._conversations.start(owner), ask
        return self._conversations.resume(owner, conversation_id), ask

    async def _stream(
        self, session: ChatSession, ask: Ask, updates: Iterator[Update], latest: _Latest, receive: Receive, send: Send
    ) -> None:
        shown = _Shown()

        async def watch() -> None:  # the client going away is its Stop
            while (await receive())["type"] != "http.disconnect":
                pass
            latest.stop(gone=not shown.done)

        async def write(message: Message) -> None:
            try:
                await send(message)
            except OSError:  # the connection closed under a write: the same as a disconnect
                latest.stop(gone=True)

        def body(data: bytes, more: bool = True) -> Message:
            return {"type": "http.response.body", "body": data, "more_body": more}

        async def produce() -> None:
            # One thread makes the whole reply (not one hand-off per update): it never waits for the client.
            await anyio.to_thread.run_sync(latest.produce, updates, limiter=self._threads)

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch)
                tasks.start_soon(produce)
                start = [(b"content-type", MEDIA_TYPE.encode()), (b"x-accel-buffering", b"no")]
                await write({"type": "http.response.start", "status": 200, "headers": start})
                await write(body(line({"conversation_id": session.session_id, "model": ask.model})))
                while not (shown.done or latest.stopped):
                    update, finished = await latest.next()
                    if update is not None and (out := shown.lines(update)):
                        await write(body(out))
                    if finished:
                        break
                if not latest.stopped:
                    await write(body(b"", more=False))
                latest.stop()  # answered, or nobody left to answer: the reply's thread ends
                await latest.produced.wait()
                tasks.cancel_scope.cancel()  # then stop watching for a disconnect
        finally:
            # Leaving early (or cancelled): the reply's thread closes the reply, which stores what streamed; the
            # task group above waits for that thread, and so does this, shielded, so nothing cuts the save short.
            latest.stop()
            with anyio.CancelScope(shield=True):
                await latest.produced.wait()
            if latest.gone:
                log.info("%s: the client went away; what streamed is stored", ROUTE)


class _Latest:
    """The newest update of one reply, handed from the thread that makes it to the event loop that sends it.

    Updates are cumulative (the whole text so far), so the loop needs only the newest: a client slower than
    the model gets fewer, larger lines, and the thread never waits for it. Stop (the client went away, or the
    answer is sent) is seen by the thread after the update it is making, as a closed generator: the reply
    then stores what streamed (ChatService.reply)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._update: Update | None = None
        self._finished = False
        self._ready = asyncio.Event()
        self._stop = threading.Event()
        self.produced = asyncio.Event()  # the thread has ended (and the turn is stored, or failed to be)
        self.gone = False

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self, gone: bool = False) -> None:
        """From the loop: end the reply after the update being made (`gone`: because the client went away)."""
        self.gone = self.gone or gone
        self._stop.set()
        self._ready.set()

    async def next(self) -> tuple[Update | None, bool]:
        """The newest update not yet taken (None if none), and whether the reply has ended."""
        await self._ready.wait()
        self._ready.clear()
        with self._lock:
            update, self._update = self._update, None
            return update, self._finished

    def produce(self, updates: Iterator[Update]) -> None:
        """In the reply's thread: make the reply, handing over each update, until it ends or is stopped."""
        done = False
        try:
            for update in updates:
                done = update.done
                with self._lock:
                    self._update = update
                self._loop.call_soon_threadsafe(self._ready.set)
                if done or self._stop.is_set():
                    break
        finally:
            close = getattr(updates, "close", None)  # a generator's: what ChatService.reply returns
            if not done and close is not None:
                close()  # stores what streamed (ChatService.reply)
            with self._lock:
                self._finished = True
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        self._ready.set()
        self.produced.set()


class _Shown:
    """What a client was sent of one reply so far, and the lines that bring it up to an update."""

    def __init__(self) -> None:
        self.text = self.thinking = ""
        self.done = False

    def lines(self, update: Update) -> bytes:
        out = b""
        if update.thinking != self.thinking and update.thinking.startswith(self.thinking):
            out += line({"thinking": update.thinking[len(self.thinking) :]})
            self.thinking = update.thinking
        if update.text != self.text and update.text.startswith(self.text):  # a reply only grows until done
            out += line({"delta": update.text[len(self.text) :]})
            self.text = update.text
        if update.done:
            self.done = True
            final = {"done": True, "text": update.text, "notice": update.notice, "saved": update.saved}
            out += line(final | {"answered_by": update.answered_by, "because": update.because})
        return out
