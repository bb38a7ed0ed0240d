"""The HTTP front of the chat: who is calling and what a request may do, decided before Gradio sees it.

One ASGI middleware, `Guard`, in front of everything, built from small parts:
- **Default deny.** Every route of the pinned Gradio app has a rule (`chatapp.gradio_compat`): who may call it
  and how the session or event id it names is bound to the caller. Any other route — one a Gradio upgrade adds,
  or `deep_link`, which hands out another session's state — is answered 404.
- **Who.** Every request's caller is computed from that request alone and handed to Gradio, which passes it to
  each handler as `gr.Request.username` (see `chatapp.identity`): a verified IAP assertion (`CHAT_AUTH=iap`),
  Gradio's own sign-in (`password`), or a server-minted, signed browser id in an HttpOnly cookie (`none`,
  `chatapp.browser_id`).
- **Sessions belong to their first caller** (`chatapp.session_owners`): a session hash in a path, a query or a
  body is bound to the first caller that uses it, an event id to the caller it was answered to; anyone else
  presenting one gets 403.
- **Sign-in limits** (`chatapp.login_limits`): failed logins per user name and per client address.
- **A small surface.** Cross-site writes are refused; HTML carries a Content-Security-Policy that forbids framing,
  foreign form targets and remote images; every answer but static files is `Cache-Control: no-store`; session
  cookies are `SameSite=Lax`, and `Secure` over HTTPS.
- **Uploads are the uploader's** (`chatapp.uploads`): signed-in callers only, within their rate and disk limits,
  every file judged by its content, served back only to the caller who uploaded it.

Bodies are read by the Guard only on the routes it must judge them on (sign-in, the JSON of session routes); a
streamed answer passes through untouched after its first message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatapp.asgi_io import (
    json_answer,
    json_object,
    read_body,
    refuse,
    replay,
    set_content_length,
    set_request_cookie,
    set_request_path,
)
from chatapp.browser_id import COOKIE as BROWSER_COOKIE
from chatapp.browser_id import BrowserIds, cookie_header
from chatapp.gradio_compat import (
    DEEP_LINK_QUERY,
    EVENT_ANSWERS,
    QUERY_IDS,
    Access,
)
from chatapp.headers import CSP, SECURITY_HEADERS, harden_cookies
from chatapp.iap import HEADER as IAP_HEADER
from chatapp.iap import AssertionRefused, IapVerifier
from chatapp.images import ALLOWED, MAX_IMAGE_BYTES, MAX_IMAGES_PER_MESSAGE
from chatapp.login_limits import BadLoginForm, LoginLimiter, client_address, login_user_name
from chatapp.route_rules import HEALTH_PATHS, route_table
from chatapp.session_owners import SessionOwners
from chatapp.uploads import UPLOADS_PER_MINUTE, UploadRegistry, all_images

log = logging.getLogger(__name__)

# Refused with 413 before anything parses them (by the Guard, which also reads some bodies itself). A chat
# message is at most 100,000 characters.
MAX_BODY_BYTES = 2 * 1024 * 1024
# The upload route alone: one message's images at once, plus the multipart framing.
MAX_UPLOAD_BODY_BYTES = MAX_IMAGES_PER_MESSAGE * MAX_IMAGE_BYTES + 1024 * 1024
MAX_UPLOAD_ANSWER_BYTES = 1024 * 1024
MAX_EVENT_ANSWER_BYTES = 64 * 1024
FULL = "Too many images are waiting to be sent: send them with a message (or wait an hour) first."


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: str,
        trusted_proxy: bool = False,
        iap: IapVerifier | None = None,
        password_user: Callable[[Request], Awaitable[str | None]] | None = None,
        browser_ids: BrowserIds | None = None,
        uploads: UploadRegistry | None = None,
        logins: LoginLimiter | None = None,
        sessions: SessionOwners | None = None,
    ) -> None:
        if mode == "iap" and iap is None:
            raise ValueError("CHAT_AUTH=iap needs an IapVerifier")
        if mode == "password" and password_user is None:
            raise ValueError("CHAT_AUTH=password needs a way to read the signed-in user")
        if mode == "none" and browser_ids is None:
            raise ValueError("CHAT_AUTH=none needs a key to sign browser ids with")
        self.app = app
        self.mode = mode
        self.trusted_proxy = trusted_proxy
        self.iap = iap
        self.password_user = password_user
        self.browser_ids = browser_ids
        self.uploads = uploads
        self.routes = route_table()
        self.logins = logins or LoginLimiter()  # shared by replicas when given the store (server.py)
        self.upload_rate = LoginLimiter(limit=UPLOADS_PER_MINUTE)
        self.sessions = sessions or SessionOwners()

    # -- the request's facts -------------------------------------------------------------------------------

    def client_address(self, request: Request) -> str:
        return client_address(request.headers, request.client.host if request.client else None, self.trusted_proxy)

    def is_https(self, request: Request) -> bool:
        if request.url.scheme == "https":
            return True
        return self.trusted_proxy and request.headers.get("x-forwarded-proto", "").lower() == "https"

    @staticmethod
    def is_cross_site_write(request: Request) -> bool:
        if request.method in {"GET", "HEAD", "OPTIONS"}:
            return False
        if request.headers.get("sec-fetch-site") == "cross-site":
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return False  # not a browser's cross-origin request (gradio_client, curl): cookies are not ambient
        return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()

    # -- ASGI ----------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The one body cap (FastAPI's own is off: it applies at the app and again at the router, and the inner
        # one would override any per-route value). 413 before anything parses the body, this guard included.
        found = self.routes.lookup(scope["method"], scope["path"])
        limit = MAX_UPLOAD_BODY_BYTES if found and found[0] is Access.UPLOAD else MAX_BODY_BYTES
        await RequestBodyLimitMiddleware(self._guarded(found), limit)(scope, receive, send)

    def _guarded(self, found: tuple[Access, str, dict[str, str]] | None) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            await self._handle(found, scope, receive, send)

        return guarded

    async def _handle(
        self, found: tuple[Access, str, dict[str, str]] | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope)
        https = self.is_https(request)
        cacheable = found is not None and found[0] is Access.STATIC
        set_cookies: list[str] = []

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.append(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    headers["content-security-policy"] = CSP
                if not cacheable:  # who is calling shapes every other answer: no shared or later copy of it
                    headers["cache-control"] = "no-store"
                harden_cookies(headers, https)
                for cookie in set_cookies:
                    headers.append("set-cookie", cookie)
            await send(message)

        refusal = await self._check(request, found, https, set_cookies)
        if refusal is not None:
            await refusal(scope, receive, send_hardened)
            return
        assert found is not None
        access, template, _ = found
        if access is Access.LOGIN:
            await self._login(request, scope, receive, send_hardened)
        elif access is Access.UPLOAD:
            await self._upload(request, scope, receive, send_hardened)
        elif access in (Access.SESSION_IN_BODY, Access.NEW_EVENT):
            await self._session_call(template, access, scope, receive, send_hardened)
        else:
            await self.app(scope, receive, send_hardened)

    async def _check(
        self, request: Request, found: tuple[Access, str, dict[str, str]] | None, https: bool, set_cookies: list[str]
    ) -> Response | None:
        """Everything decided from the request line and headers alone; None means: go on."""
        path = request.url.path
        if path in HEALTH_PATHS:
            return None
        if self.is_cross_site_write(request):
            log.info("refused a cross-site %s %s from origin %s", request.method, path, request.headers.get("origin"))
            return refuse(403, "Cross-site requests are not accepted.")

        caller = await self._caller(request, https, set_cookies)
        if isinstance(caller, Response):
            return caller
        request.scope.setdefault("state", {})["caller"] = caller

        if found is None or found[0] is Access.DENY:
            log.info("refused %s %s: no such route", request.method, path)
            return refuse(404, "Not found.")
        access, _, params = found
        if DEEP_LINK_QUERY in request.query_params:
            return refuse(400, "Deep links are not served here.")
        if access is Access.LOGIN and self.mode != "password":
            return refuse(404, "Not found: this chat has no sign-in.")
        if access in (Access.OPEN, Access.STATIC, Access.LOGIN):
            return None
        if caller is None:
            return refuse(401, "Unauthorized: sign in first.")
        if access is Access.UPLOAD and self.uploads is None:
            return refuse(404, "This chat takes text only: there is no upload.")
        if access is Access.FILE:
            # A file only for the caller who uploaded it, by the handle they were answered (never a path): nothing
            # else of the disk, nobody else's upload, no URL for the server to fetch.
            name = next(iter(params.values()))
            if not (self.uploads and (path := self.uploads.path_of(caller, name))):
                return refuse(404, "No such file.")
            set_request_path(request.scope, request.url.path.removesuffix(name) + path)  # the handle's file
            return None
        if access is Access.SESSION_IN_PATH:
            return await self._bind(params["session_hash"], caller, path)
        if access is Access.SESSION_IN_QUERY:
            return await self._bind(request.query_params.get(QUERY_IDS[found[1]]), caller, path)
        # Gradio takes an event id it does not know for a session hash: only ids this caller was answered (or
        # session hashes it holds) may be read.
        if access is Access.EVENT_IN_PATH and self.sessions.owner(params["event_id"]) != caller:
            log.warning("refused %s: event %s… is not this caller's", path, params["event_id"][:6])
            return refuse(403, "Forbidden: this event belongs to someone else, or to nobody.")
        return None

    async def _caller(self, request: Request, https: bool, set_cookies: list[str]) -> str | Response | None:
        if self.mode == "iap":
            assert self.iap is not None
            try:
                user = await anyio.to_thread.run_sync(self.iap.verify, request.headers.get(IAP_HEADER))
            except AssertionRefused as exc:
                log.info("refused %s %s: %s", request.method, request.url.path, exc)
                return refuse(401, f"Unauthorized: {exc}.")
            return user.owner
        if self.mode == "password":
            assert self.password_user is not None
            name = await self.password_user(request)
            return f"user:{name}" if name else None
        assert self.browser_ids is not None
        browser_id = request.cookies.get(BROWSER_COOKIE, "")
        if not self.browser_ids.valid(browser_id):
            # Never an id the page chose: a planted one would hand the planter everything this browser writes.
            browser_id = self.browser_ids.mint()
            set_request_cookie(request.scope, BROWSER_COOKIE, browser_id)
            set_cookies.append(cookie_header(browser_id, https))
        return f"browser:{browser_id}"

    async def _bind(self, key: object, caller: str, path: str) -> Response | None:
        if not isinstance(key, str) or not key:
            return None  # Gradio refuses a request without one itself
        if not await self.sessions.bind(key, caller):
            log.warning("refused %s: session %s… belongs to another caller", path, key[:6])
            return refuse(403, "Forbidden: this session belongs to someone else. Reload the page.")
        return None

    async def _session_call(self, template: str, access: Access, scope: Scope, receive: Receive, send: Send) -> None:
        """A call naming a session (and maybe an event) in its JSON body; the event id it is answered becomes the
        caller's before the caller learns it."""
        caller = scope["state"]["caller"]
        body = await read_body(receive)
        if self.uploads is not None:  # the caller's upload handles → their paths, where Gradio expects a path
            body = self.uploads.resolve(caller, body)
            set_content_length(scope, len(body))
        if access is Access.SESSION_IN_BODY:
            data = json_object(body)
            refusal = await self._bind(data.get("session_hash"), caller, scope["path"])
            event_id = data.get("event_id")
            if refusal is None and isinstance(event_id, str) and self.sessions.owner(event_id) not in (None, caller):
                refusal = refuse(403, "Forbidden: this event belongs to someone else.")
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        receive = replay(body, receive)
        if template not in EVENT_ANSWERS:
            await self.app(scope, receive, send)
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

        await self.app(scope, receive, hold)
        if passing:
            return
        answer = json_object(b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body"))
        if isinstance(event_id := answer.get("event_id"), str) and not self.sessions.claim(event_id, caller):
            await refuse(503, "Too many events are open: try again in a minute.")(scope, receive, send)
            return
        for message in held:
            await send(message)

    async def _upload(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        """Let Gradio write the files (within the caller's limits), judge each by its content, then record the
        paths for the caller and answer it their handles instead (`chatapp.uploads`)."""
        assert self.uploads is not None
        caller = scope["state"]["caller"]
        if (refusal := await self._bind(request.query_params.get("upload_id"), caller, scope["path"])) is not None:
            await refusal(scope, receive, send)
            return
        if (wait := self.upload_rate.retry_after([caller])) is not None:
            refusal = refuse(429, "Too many uploads: try again in a minute.", {"Retry-After": str(wait)})
            await refusal(scope, receive, send)
            return
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            # Cut off by the body cap mid-way, Gradio leaves its partial files behind: only a declared length,
            # which the cap and the caller's room judge before a byte is written (browsers and gradio_client
            # always declare one).
            await refuse(411, "An upload must declare its Content-Length.")(scope, receive, send)
            return
        if int(declared) > self.uploads.room(caller):
            await refuse(413, FULL)(scope, receive, send)
            return
        self.upload_rate.failed([caller])  # every upload counts, not only failed ones
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        if start is not None and start["status"] == 200:
            try:
                paths = json.loads(body) if len(body) <= MAX_UPLOAD_ANSWER_BYTES else None
            except ValueError:
                paths = None
            if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
                fresh = [p for p in paths if not self.uploads.owns(caller, p)]
                if not await anyio.to_thread.run_sync(all_images, paths, fresh):
                    refusal = refuse(415, f"Only {ALLOWED} images can be attached (judged by their content).")
                    await refusal(scope, receive, send)
                    return
                handles = await anyio.to_thread.run_sync(self.uploads.add, caller, paths)
                if handles is None:
                    await refuse(413, FULL)(scope, receive, send)
                    return
                held = json_answer(start, handles)  # the caller learns handles, never the server's paths
            else:
                await refuse(502, "The upload's answer was not understood.")(scope, receive, send)
                return
        for message in held:
            await send(message)

    async def _login(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        try:
            name = await login_user_name(Request(scope, replay(body, receive)))
        except BadLoginForm as exc:
            await refuse(400, str(exc))(scope, receive, send)
            return
        keys = [f"addr:{self.client_address(request)}", f"user:{name}"]
        wait = await anyio.to_thread.run_sync(self.logins.retry_after, keys)  # the store may be read
        if wait is not None:
            log.warning("login refused for %s: too many failed attempts", keys[0])
            refusal = refuse(429, "Too many failed sign-in attempts: try again later.", {"Retry-After": str(wait)})
            await refusal(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            # A failure is counted before the caller learns of it: attempts sent one after another are each
            # judged with every earlier failure counted, on every replica (the store write takes a moment).
            if message["type"] == "http.response.start" and message["status"] != 200:
                await anyio.to_thread.run_sync(self.logins.failed, keys)
                log.info("failed sign-in from %s", keys[0])
            await send(message)

        await self.app(scope, replay(body, receive), watch)
