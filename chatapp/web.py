"""The HTTP front of the chat: who is calling and what a request may do, decided before Gradio sees it.

One ASGI middleware, `Guard`, in front of everything:
- **Who.** Every request's caller is computed from that request alone and handed to Gradio, which passes it to
  each handler as `gr.Request.username` (see `chatapp.identity`): a verified IAP assertion (`CHAT_AUTH=iap`),
  Gradio's own sign-in (`password`), or a random browser id in an HttpOnly cookie (`none`).
- **Sessions belong to their first caller.** Gradio keys per-tab state and queued events by the client-chosen
  `session_hash`, which travels in URLs. A session hash is bound to the first caller that uses it; anyone else
  presenting it (to join the queue, read its events, cancel them, or keep it alive) gets 403.
- **Sign-in hygiene.** Failed logins are limited per client address and per user name; session cookies are
  `SameSite=Lax`, and `Secure` when the request arrived over HTTPS.
- **A small surface.** Cross-site writes are refused; HTML responses carry a Content-Security-Policy that
  forbids framing, foreign form targets and remote images.
- **Uploads are the uploader's.** Gradio's upload route takes images from signed-in callers only, with a body
  cap of its own (every other route keeps `MAX_BODY_BYTES`); the paths it answers are recorded for that caller
  (`chatapp.uploads`), and `/gradio_api/file=` serves a path only to the caller who uploaded it, nothing else
  (no other file, no URL to fetch). Without an `UploadRegistry` there is no upload route at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatapp.iap import HEADER as IAP_HEADER
from chatapp.iap import AssertionRefused, IapVerifier
from chatapp.images import ALLOWED, MAX_IMAGE_BYTES, MAX_IMAGES_PER_MESSAGE, sniff
from chatapp.uploads import UploadRegistry

log = logging.getLogger(__name__)

BROWSER_COOKIE = "hybrid-chat-browser"
BROWSER_ID = re.compile(r"^[0-9a-f]{32}$")
BROWSER_COOKIE_MAX_AGE_S = 400 * 24 * 3600  # the longest browsers keep a cookie
# Refused with 413 before anything parses them (by the Guard, which also reads some bodies itself). A chat
# message is at most 100,000 characters.
MAX_BODY_BYTES = 2 * 1024 * 1024
# The upload route alone: one message's images at once, plus the multipart framing.
MAX_UPLOAD_BODY_BYTES = MAX_IMAGES_PER_MESSAGE * MAX_IMAGE_BYTES + 1024 * 1024
MAX_UPLOAD_ANSWER_BYTES = 1024 * 1024
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
LOGIN_FAILURES_PER_MINUTE = 10
SESSIONS_REMEMBERED = 200_000  # bound on the session → owner map (~40 MB at worst); the oldest are forgotten

CSP = "; ".join(
    [
        "default-src 'self'",
        # Gradio's page bootstraps with inline scripts and styles.
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]

_API = "/gradio_api"
# Routes that name a Gradio session: in the path, the query string, or the JSON body.
_SESSION_IN_PATH = re.compile(rf"^{_API}/heartbeat/([^/]+)/?$")
_SESSION_IN_QUERY = re.compile(rf"^{_API}/queue/data/?$")
_SESSION_IN_BODY = re.compile(rf"^{_API}/(?:queue/join|cancel|(?:run|api|call)/[^/]+)/?$")
# Gradio leaves these without its own sign-in check.
_NEEDS_CALLER = re.compile(rf"^{_API}/(?:cancel|reset|heartbeat/[^/]+)/?$")
_UPLOADS = re.compile(rf"^{_API}/(?:upload|upload_progress)/?$")
_UPLOAD = re.compile(rf"^{_API}/upload/?$")
_FILE = re.compile(rf"^{_API}/file(?:=|/)(.*)$", re.DOTALL)
_LOGIN = re.compile(r"^/login/?$")


def _refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(reason + "\n", status_code=status, headers=headers)


@dataclass
class LoginLimiter:
    """At most `limit` failed logins per key (client address, user name) in any `window_s` seconds."""

    limit: int = LOGIN_FAILURES_PER_MINUTE
    window_s: float = 60.0
    max_keys: int = 100_000
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, keys: Iterable[str], now: float | None = None) -> int | None:
        """Seconds until the next attempt is allowed, or None if it is allowed now."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            times = self._failures.get(key)
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if times is not None and len(times) >= self.limit:
                wait = max(wait, self.window_s - (now - times[0]))
        return max(1, round(wait + 0.5)) if wait else None

    def failed(self, keys: Iterable[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self.limit)).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)


class SessionOwners:
    """Gradio session hash → the caller that first used it."""

    def __init__(self, capacity: int = SESSIONS_REMEMBERED) -> None:
        self.capacity = capacity
        self._owners: OrderedDict[str, str] = OrderedDict()

    def claim(self, session_hash: str, caller: str) -> bool:
        owner = self._owners.setdefault(session_hash, caller)
        self._owners.move_to_end(session_hash)
        if len(self._owners) > self.capacity:
            self._owners.popitem(last=False)
        return owner == caller


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: str,
        trusted_proxy: bool = False,
        iap: IapVerifier | None = None,
        password_user: Callable[[Request], str | None] | None = None,
        uploads: UploadRegistry | None = None,
    ) -> None:
        if mode == "iap" and iap is None:
            raise ValueError("CHAT_AUTH=iap needs an IapVerifier")
        if mode == "password" and password_user is None:
            raise ValueError("CHAT_AUTH=password needs a way to read the signed-in user")
        self.app = app
        self.mode = mode
        self.trusted_proxy = trusted_proxy
        self.iap = iap
        self.password_user = password_user
        self.uploads = uploads
        self.logins = LoginLimiter()
        self.sessions = SessionOwners()

    # -- the request's facts -------------------------------------------------------------------------------

    def client_address(self, request: Request) -> str:
        forwarded = request.headers.get("x-forwarded-for") if self.trusted_proxy else None
        if forwarded:
            # Google's load balancer appends "<client>,<balancer>" to whatever the client sent; the client's
            # own entries come first and prove nothing.
            hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
            if hops:
                return hops[-2] if len(hops) >= 2 else hops[-1]
        return request.client.host if request.client else "unknown"

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
        upload = self.uploads is not None and _UPLOAD.match(scope["path"]) is not None
        limit = MAX_UPLOAD_BODY_BYTES if upload else MAX_BODY_BYTES
        await RequestBodyLimitMiddleware(self._guarded, limit)(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        path = scope["path"]
        https = self.is_https(request)
        set_cookies: list[str] = []

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.append(name.decode(), value.decode())
                if headers.get("content-type", "").startswith("text/html"):
                    headers["content-security-policy"] = CSP
                _harden_cookies(headers, https)
                for cookie in set_cookies:
                    headers.append("set-cookie", cookie)
            await send(message)

        refusal = await self._check(request, path, https, set_cookies)
        if refusal is not None:
            await refusal(scope, receive, send_hardened)
            return

        if _LOGIN.match(path) and request.method == "POST" and self.mode == "password":
            await self._login(request, scope, receive, send_hardened)
            return

        if _UPLOAD.match(path) and request.method == "POST" and self.uploads is not None:
            await self._upload(scope, receive, send_hardened)
            return

        if _SESSION_IN_BODY.match(path) and request.method == "POST":
            body = await _read_body(receive)
            refusal = self._check_session(_session_from_json(body), scope)
            if refusal is not None:
                await refusal(scope, receive, send_hardened)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_hardened)

    async def _check(self, request: Request, path: str, https: bool, set_cookies: list[str]) -> Response | None:
        """Everything decided from the request line and headers alone; None means: go on."""
        if path in OPEN_PATHS:
            return None
        if self.is_cross_site_write(request):
            log.info("refused a cross-site %s %s from origin %s", request.method, path, request.headers.get("origin"))
            return _refuse(403, "Cross-site requests are not accepted.")
        if _UPLOADS.match(path) and self.uploads is None:
            return _refuse(404, "This chat takes text only: there is no upload.")

        caller: str | None
        if self.mode == "iap":
            try:
                assert self.iap is not None
                user = await anyio.to_thread.run_sync(self.iap.verify, request.headers.get(IAP_HEADER))
            except AssertionRefused as exc:
                log.info("refused %s %s: %s", request.method, path, exc)
                return _refuse(401, f"Unauthorized: {exc}.")
            caller = user.owner
        elif self.mode == "password":
            assert self.password_user is not None
            name = self.password_user(request)
            caller = f"user:{name}" if name else None
        else:
            browser_id = request.cookies.get(BROWSER_COOKIE, "")
            if not BROWSER_ID.match(browser_id):
                browser_id = secrets.token_hex(16)
                _add_cookie_to_request(request.scope, BROWSER_COOKIE, browser_id)
                set_cookies.append(_browser_cookie(browser_id, https))
            caller = f"browser:{browser_id}"
        request.scope.setdefault("state", {})["caller"] = caller

        if caller is None and (_NEEDS_CALLER.match(path) or _UPLOADS.match(path)):
            return _refuse(401, "Unauthorized: sign in first.")
        # A file only for the caller who uploaded it, by the exact path they were given: nothing else of the
        # disk, nobody else's upload, no URL for the server to fetch.
        if (match := _FILE.match(path)) and not (caller and self.uploads and self.uploads.owns(caller, match[1])):
            return _refuse(404, "No such file.")
        session_hash = None
        if match := _SESSION_IN_PATH.match(path):
            session_hash = match.group(1)
        elif _SESSION_IN_QUERY.match(path):
            session_hash = request.query_params.get("session_hash")
        return self._check_session(session_hash, request.scope)

    def _check_session(self, session_hash: object, scope: Scope) -> Response | None:
        if not isinstance(session_hash, str) or not session_hash:
            return None
        caller = scope.get("state", {}).get("caller")
        if caller is None:
            return None  # Gradio's own sign-in check refuses it
        if not self.sessions.claim(session_hash, caller):
            log.warning("refused %s: session %s… belongs to another caller", scope["path"], session_hash[:6])
            return _refuse(403, "Forbidden: this session belongs to someone else. Reload the page.")
        return None

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let Gradio write the files (under the upload body cap), then record the answered paths for the caller
        before the caller learns them."""
        assert self.uploads is not None
        caller = scope["state"]["caller"]
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        if start is not None and start["status"] == 200 and len(body) <= MAX_UPLOAD_ANSWER_BYTES:
            try:
                paths = json.loads(body)
            except ValueError:
                paths = None
            if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
                if not await anyio.to_thread.run_sync(_all_images, paths):
                    refusal = _refuse(415, f"Only {ALLOWED} images can be attached (judged by their content).")
                    await refusal(scope, receive, send)
                    return
                self.uploads.add(caller, paths)
        for message in held:
            await send(message)

    async def _login(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        names = parse_qs(body.decode("utf-8", "replace")).get("username", [""])
        keys = [f"addr:{self.client_address(request)}", f"user:{names[0].strip().lower()}"]
        wait = self.logins.retry_after(keys)
        if wait is not None:
            log.warning("login refused for %s: too many failed attempts", keys[0])
            refusal = _refuse(429, "Too many failed sign-in attempts: try again later.", {"Retry-After": str(wait)})
            await refusal(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, _replay(body, receive), watch)
        if status != 200:
            self.logins.failed(keys)
            log.info("failed sign-in from %s", keys[0])


def _all_images(paths: list[str]) -> bool:
    """Whether every uploaded file starts like an accepted image; if not, all of them are deleted at once."""
    ok = True
    for path in paths:
        try:
            with open(path, "rb") as file:
                ok = ok and sniff(file.read(16)) is not None
        except OSError:
            ok = False
    if not ok:
        for path in paths:
            with contextlib.suppress(OSError):
                os.remove(path)
    return ok


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later messages: the disconnect

    return replayed


def _session_from_json(body: bytes) -> object:
    try:
        data = json.loads(body)
    except ValueError:
        return None  # Gradio answers the malformed body itself
    return data.get("session_hash") if isinstance(data, dict) else None


def _add_cookie_to_request(scope: Scope, name: str, value: str) -> None:
    headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
    existing = Headers(scope=scope).get("cookie")
    cookie = f"{existing}; {name}={value}" if existing else f"{name}={value}"
    scope["headers"] = [*headers, (b"cookie", cookie.encode("latin-1"))]


def _browser_cookie(browser_id: str, https: bool) -> str:
    cookie = f"{BROWSER_COOKIE}={browser_id}; Path=/; Max-Age={BROWSER_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax"
    return f"{cookie}; Secure" if https else cookie


def _harden_cookies(headers: MutableHeaders, https: bool) -> None:
    """Gradio's sign-in cookies: never sent on cross-site requests, and only over HTTPS when served over HTTPS."""
    cookies = headers.getlist("set-cookie")
    if not cookies:
        return
    del headers["set-cookie"]
    for cookie in cookies:
        cookie = re.sub(r";\s*samesite=none", "; SameSite=Lax", cookie, flags=re.IGNORECASE)
        if "samesite=" not in cookie.lower():
            cookie += "; SameSite=Lax"
        if https and "; secure" not in cookie.lower():
            cookie += "; Secure"
        headers.append("set-cookie", cookie)
