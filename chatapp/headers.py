"""The headers every answer of the chat carries: what a page may load and send, who may frame it, and how
Gradio's sign-in cookies are sent."""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders

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
