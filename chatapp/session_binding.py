"""The front door's session layer: a Gradio session hash or event id a request names is bound to its caller.

A session hash in a path, a query or a JSON body belongs to the first caller that uses it; an event id to the
caller it was answered to (`chatapp.session_owners` keeps the map). Anyone else presenting one gets 403. The body
is read once, here, and handed on; a streamed answer passes through untouched after its first message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatapp.asgi_io import json_object, read_body, refuse, replay, set_content_length
from chatapp.gradio_compat import EVENT_ANSWERS, QUERY_IDS, Access
from chatapp.session_owners import SessionOwners

# The front door logs its refusals under one name, whichever layer refuses.
log = logging.getLogger("chatapp.web")

# An answer longer than this is not `{"event_id": …}`: it is passed on as it comes.
MAX_EVENT_ANSWER_BYTES = 64 * 1024


class SessionBinding:
    def __init__(self, owners: SessionOwners | None = None) -> None:
        self.owners = owners or SessionOwners()

    async def bind(self, key: object, caller: str, path: str) -> Response | None:
        """None if `caller` may use the session `key` (it becomes theirs if nobody holds it), else a refusal."""
        if not isinstance(key, str) or not key:
            return None  # Gradio refuses a request without one itself
        if not await self.owners.bind(key, caller):
            log.warning("refused %s: session %s… belongs to another caller", path, key[:6])
            return refuse(403, "Forbidden: this session belongs to someone else. Reload the page.")
        return None

    async def check(
        self, access: Access, template: str, params: dict[str, str], query: Mapping[str, str], caller: str, path: str
    ) -> Response | None:
        """What the request line names (path and query): None means go on."""
        if access is Access.SESSION_IN_PATH:
            return await self.bind(params["session_hash"], caller, path)
        if access is Access.SESSION_IN_QUERY:
            return await self.bind(query.get(QUERY_IDS[template]), caller, path)
        # Gradio takes an event id it does not know for a session hash: only ids this caller was answered (or
        # session hashes it holds) may be read.
        if access is Access.EVENT_IN_PATH and self.owners.owner(params["event_id"]) != caller:
            log.warning("refused %s: event %s… is not this caller's", path, params["event_id"][:6])
            return refuse(403, "Forbidden: this event belongs to someone else, or to nobody.")
        return None

    async def call(
        self,
        app: ASGIApp,
        template: str,
        access: Access,
        scope: Scope,
        receive: Receive,
        send: Send,
        resolve: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        """A call naming a session (and maybe an event) in its JSON body; the event id it is answered becomes the
        caller's before the caller learns it. `resolve` rewrites the body once read (the caller's upload handles
        → their paths, `chatapp.uploads`), so it is read once for both."""
        caller = scope["state"]["caller"]
        body = await read_body(receive)
        if resolve is not None:
            body = resolve(caller, body)
            set_content_length(scope, len(body))
        if access is Access.SESSION_IN_BODY:
            data = json_object(body)
            refusal = await self.bind(data.get("session_hash"), caller, scope["path"])
            event_id = data.get("event_id")
            if refusal is None and isinstance(event_id, str) and self.owners.owner(event_id) not in (None, caller):
                refusal = refuse(403, "Forbidden: this event belongs to someone else.")
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        receive = replay(body, receive)
        if template not in EVENT_ANSWERS:
            await app(scope, receive, send)
            return
        held: list[Message] = []
        passing = False  # an answer too long to be an event id: pass it on as it comes

        async def hold(message: Message) -> None:
            nonlocal passing
            if not passing:
                held.append(message)
                if sum(len(m.get("body", b"")) for m in held) <= MAX_EVENT_ANSWER_BYTES:
                    return
                passing = True
                for earlier in held[:-1]:
                    await send(earlier)
            await send(message)

        await app(scope, receive, hold)
        if passing:
            return
        answer = json_object(b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body"))
        if isinstance(event_id := answer.get("event_id"), str) and not self.owners.claim(event_id, caller):
            await refuse(503, "Too many events are open: try again in a minute.")(scope, receive, send)
            return
        for message in held:
            await send(message)
