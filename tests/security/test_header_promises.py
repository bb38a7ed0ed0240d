"""The header layer (`chatapp.headers`) on its own: what it adds to an answer's start and how it rewrites cookies.

tests/security/test_web_promises.py and test_identity_promises.py check the same through the whole app, but
Gradio only ever sets cookies that already name a SameSite (its sign-in cookies: `none` and Starlette's default
`lax`), so the layer's other cases (a cookie without one, one that is `Strict`, one already `Secure`) are driven
here with the cookies written out.
"""

from __future__ import annotations

import pytest
from starlette.datastructures import MutableHeaders

from chatapp.headers import CSP, harden_cookies, hardened
from tests.security.inprocess import run_apart

APP_COOKIES = [
    "a=1; Path=/; SameSite=none; Secure",  # Gradio's sign-in token
    "b=2; Path=/",  # no SameSite at all
    "c=3; Path=/; samesite=Strict",  # stricter than Lax: kept
    "d=4; HttpOnly; SameSite=Lax",
]


def cookies_after(cookies: list[str], https: bool) -> list[str]:
    headers = MutableHeaders(raw=[(b"content-type", b"text/plain")])
    for cookie in cookies:
        headers.append("set-cookie", cookie)
    harden_cookies(headers, https)
    assert headers["content-type"] == "text/plain"
    return headers.getlist("set-cookie")


def test_cookies_are_lax_at_most_and_never_weakened_over_plain_http():
    assert cookies_after(APP_COOKIES, https=False) == [
        "a=1; Path=/; SameSite=Lax; Secure",
        "b=2; Path=/; SameSite=Lax",
        "c=3; Path=/; samesite=Strict",
        "d=4; HttpOnly; SameSite=Lax",
    ]


def test_over_https_every_cookie_is_secure_once():
    assert cookies_after(APP_COOKIES, https=True) == [
        "a=1; Path=/; SameSite=Lax; Secure",
        "b=2; Path=/; SameSite=Lax; Secure",
        "c=3; Path=/; samesite=Strict; Secure",
        "d=4; HttpOnly; SameSite=Lax; Secure",
    ]


def test_an_answer_without_cookies_gets_none():
    assert cookies_after([], https=True) == []


def started(content_type: str | None, *, https: bool, cacheable: bool, set_cookies: list[str]) -> list[dict]:
    """The messages `hardened` passes on for an answer with this content type (None: no Content-Type header), a
    cookie of the app's own and a body."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def answer() -> None:
        headers = [(b"set-cookie", b"app=1; Path=/")]
        if content_type is not None:
            headers.append((b"content-type", content_type.encode()))
        out = hardened(send, https=https, cacheable=cacheable, set_cookies=set_cookies)
        set_cookies.append("late=1; Path=/; HttpOnly")  # a later layer adds one before the answer starts
        await out({"type": "http.response.start", "status": 200, "headers": headers})
        await out({"type": "http.response.body", "body": b"<html>", "more_body": False})

    run_apart(answer)
    return sent


def test_a_page_gets_its_policy_security_headers_no_store_and_the_callers_cookies():
    start, body = started("text/html; charset=utf-8", https=False, cacheable=False, set_cookies=["id=x; HttpOnly"])
    headers = MutableHeaders(raw=start["headers"])
    assert headers["content-security-policy"] == CSP
    assert (headers["x-frame-options"], headers["x-content-type-options"]) == ("DENY", "nosniff")
    assert (headers["referrer-policy"], headers["cache-control"]) == ("same-origin", "no-store")
    assert headers.getlist("set-cookie") == [
        "app=1; Path=/; SameSite=Lax",
        "id=x; HttpOnly",
        "late=1; Path=/; HttpOnly",
    ]
    assert body == {"type": "http.response.body", "body": b"<html>", "more_body": False}


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_a_static_file_may_be_cached_and_only_html_gets_the_policy(content_type):
    start, _ = started(content_type, https=True, cacheable=True, set_cookies=[])
    headers = MutableHeaders(raw=start["headers"])
    assert "content-security-policy" not in headers and "cache-control" not in headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers.getlist("set-cookie") == ["app=1; Path=/; SameSite=Lax; Secure", "late=1; Path=/; HttpOnly"]
