"""The front door's header layer: what every answer of the chat carries (what a page may load and send, who may
frame it, whether it may be cached) and how cookies are sent."""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Send

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
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
]


def harden_cookies(headers: MutableHeaders, https: bool) -> None:
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


def hardened(send: Send, *, https: bool, cacheable: bool, set_cookies: list[str]) -> Send:
    """`send`, with every answer's start carrying the headers above, its cookies hardened and `set_cookies` added
    (read when the answer starts, so a later layer may still add to it)."""

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

    return send_hardened
