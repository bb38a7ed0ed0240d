"""The front door's promises (`chatapp.web`), checked in this process at the HTTP boundary of the whole app.

Anonymous mode (`CHAT_AUTH=none`): the browser id is minted by the chat and is the only credential; cross-site
writes are refused; every answer carries the hardening headers; unknown and refused routes are 404; a Gradio
session or event id belongs to the caller who first used (or was answered) it. Sign-in and IAP modes are in
`test_identity_promises.py`, uploads in `test_upload_promises.py`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from chatapp.browser_id import COOKIE as BROWSER_COOKIE
from chatapp.browser_id import BrowserIds
from tests.security.inprocess import (
    API,
    PNG,
    SECRET_KEY,
    browser,
    call,
    join,
    new_browser,
    send,
    served,
    store_with_usage,
    stream_refusal,
    stream_status,
    usage_report,
)

MINTED = BrowserIds(SECRET_KEY.encode()).mint()  # a browser id this chat issued (same key)
PLANTED = "0" * 32 + "." + "0" * 32  # shaped like one, not signed by the chat
SESSION_REFUSED = "Forbidden: this session belongs to someone else. Reload the page.\n"
RESET = {"event_id": "e"}  # /gradio_api/reset: a no-op that answers 200 to a caller
ID = re.compile(rf"{BROWSER_COOKIE}=([0-9a-f]{{32}}\.[0-9a-f]{{32}})")


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("open-chat")
    store = store_with_usage(folder, {f"browser:{MINTED}": 1234, f"browser:{PLANTED}": 999})
    with served(folder, {"CHAT_AUTH": "none"}, store=store) as client:
        yield client


def browser_cookies(answer) -> list[str]:
    return [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{BROWSER_COOKIE}=")]


# -- who is calling -----------------------------------------------------------------------------------------


def test_a_new_browser_gets_a_minted_httponly_lax_id_and_keeps_it(chat):
    first = send(chat, "GET", "/config")
    assert first.status_code == 200
    [cookie] = browser_cookies(first)
    assert ID.match(cookie), cookie
    attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert "secure" not in attributes, "plain HTTP: a Secure cookie would never come back"
    again = send(chat, "GET", "/config", cookie=cookie.split(";")[0])
    assert again.status_code == 200 and browser_cookies(again) == [], "a valid id is kept, not replaced"


def test_the_id_is_the_owner_the_chat_answers_for(chat):
    """The minted id's own data, and a planted (unsigned) id is replaced before Gradio sees it: its planter reads
    nothing stored under it."""
    assert usage_report(chat, browser(MINTED))["tokens_today"] == 1234
    assert usage_report(chat, browser(PLANTED))["tokens_today"] == 0
    replaced = send(chat, "GET", "/config", cookie=browser(PLANTED))
    [cookie] = browser_cookies(replaced)
    assert PLANTED not in cookie and ID.match(cookie)


def test_the_browser_cookie_is_secure_over_https_and_not_for_a_forwarded_proto_it_does_not_trust(chat):
    https = TestClient(chat.app, base_url="https://testserver")
    [cookie] = browser_cookies(send(https, "GET", "/config"))
    assert "; Secure" in cookie
    [cookie] = browser_cookies(send(chat, "GET", "/config", headers={"x-forwarded-proto": "https"}))
    assert "secure" not in cookie.lower(), "CHAT_TRUSTED_PROXY is off: anyone can send X-Forwarded-Proto"


# -- cross-site writes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},  # a browser says so, even without an Origin
        {"origin": "http://evil.example"},
        {"origin": "http://testserver.evil.example"},
        {"origin": "http://testserver:8080"},
    ],
)
def test_a_cross_site_write_is_refused(chat, headers, caplog):
    cookie = new_browser(chat)
    with caplog.at_level(logging.INFO, logger="chatapp.web"):
        answer = send(chat, "POST", f"{API}/reset", json=RESET, cookie=cookie, headers=headers)
    assert answer.status_code == 403, answer.text
    origin = headers.get("origin")
    said = [r.getMessage() for r in caplog.records if "cross-site" in r.getMessage()]
    assert said == [f"refused a cross-site POST {API}/reset from origin {origin}"], "one line says what and whence"
    assert answer.text == "Cross-site requests are not accepted.\n"
    assert answer.headers["x-content-type-options"] == "nosniff", "a refusal is hardened like any answer"


@pytest.mark.parametrize(
    "method, headers",
    [
        ("POST", {}),  # gradio_client and curl send no Origin: cookies are not ambient there
        ("POST", {"origin": "http://TestServer"}),  # the same site, host compared case-insensitively
        ("POST", {"sec-fetch-site": "same-origin", "origin": "http://testserver"}),
        ("GET", {"sec-fetch-site": "cross-site", "origin": "http://evil.example"}),  # a read: a link to the chat
    ],
)
def test_same_site_writes_and_cross_site_reads_pass(chat, method, headers):
    path = f"{API}/reset" if method == "POST" else "/config"
    body = {"json": RESET} if method == "POST" else {}
    answer = send(chat, method, path, cookie=new_browser(chat), headers=headers, **body)
    assert answer.status_code == 200, answer.text


# -- headers ------------------------------------------------------------------------------------------------


def test_the_page_may_connect_frame_and_post_only_to_the_chat(chat):
    page = send(chat, "GET", "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = {d.split()[0]: d.split()[1:] for d in page.headers["content-security-policy"].split("; ")}
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"


def test_only_static_files_may_be_cached(chat):
    assert send(chat, "GET", "/config", cookie=new_browser(chat)).headers["cache-control"] == "no-store"
    assert send(chat, "GET", "/nothing-here").headers["cache-control"] == "no-store"
    theme = send(chat, "GET", "/theme.css")
    assert theme.status_code == 200 and "no-store" not in theme.headers.get("cache-control", "")
    assert theme.headers["x-content-type-options"] == "nosniff"


# -- default deny -------------------------------------------------------------------------------------------


NOT_FOUND = "Not found.\n"


@pytest.mark.parametrize(
    "method, path, status, text",
    [
        ("GET", "/not-a-route", 404, NOT_FOUND),
        ("GET", f"{API}/deep_link", 404, NOT_FOUND),  # a rule says nobody
        ("GET", f"{API}/proxy=http://169.254.169.254/", 404, NOT_FOUND),
        ("POST", f"{API}/reset/x", 404, NOT_FOUND),  # an unknown path under a known prefix
        # The page itself, but asked to load another session's state.
        ("GET", "/?deep_link=abc", 400, "Deep links are not served here.\n"),
        ("POST", "/login", 404, "Not found: this chat has no sign-in.\n"),
    ],
)
def test_routes_without_a_rule_or_refused_by_one(chat, method, path, status, text, caplog):
    cookie = new_browser(chat)
    with caplog.at_level(logging.INFO, logger="chatapp.web"):
        answer = send(chat, method, path, cookie=cookie)
    assert (answer.status_code, answer.text) == (status, text)
    if text == NOT_FOUND:
        assert f"refused {method} {path.partition('?')[0]}: no such route" in caplog.text
    assert answer.headers["cache-control"] == "no-store"


def test_health_checks_pass_before_anything_else(chat):
    assert send(chat, "GET", "/healthz").json() == {"status": "ok"}
    assert browser_cookies(send(chat, "GET", "/healthz")) == [], "a health check is nobody: no id minted"


# -- sessions and events belong to their first caller -------------------------------------------------------


def test_a_session_hash_is_its_first_callers(chat):
    ada, bob = new_browser(chat), new_browser(chat)
    joined = join(chat, "ada-session-1", ada)
    assert joined.status_code == 200, joined.text
    event = joined.json()["event_id"]

    refused = join(chat, "ada-session-1", bob)
    assert (refused.status_code, refused.text) == (403, SESSION_REFUSED)
    data = stream_refusal(chat, f"{API}/queue/data", params={"session_hash": "ada-session-1"}, cookie=bob)
    assert data == (403, SESSION_REFUSED)
    assert stream_refusal(chat, f"{API}/heartbeat/ada-session-1", cookie=bob) == (403, SESSION_REFUSED)
    cancel = {"session_hash": "bob-session-1", "event_id": event, "fn_index": 0}
    refused = send(chat, "POST", f"{API}/cancel", json=cancel, cookie=bob)
    assert (refused.status_code, refused.text) == (403, "Forbidden: this event belongs to someone else.\n")

    # The owner goes on using it (bob's attempts did not take it over).
    assert stream_status(chat, f"{API}/queue/data", params={"session_hash": "ada-session-1"}, cookie=ada) == 200
    assert stream_status(chat, f"{API}/heartbeat/ada-session-1", cookie=ada) == 200
    cancel = {"session_hash": "ada-session-1", "event_id": event, "fn_index": 0}
    assert send(chat, "POST", f"{API}/cancel", json=cancel, cookie=ada).status_code == 200
    assert join(chat, "bob-session-1", bob).status_code == 200


def test_an_event_id_is_the_callers_it_was_answered_to(chat, caplog):
    ada, bob = new_browser(chat), new_browser(chat)
    event = call(chat, "usage", cookie=ada)
    not_yours = (403, "Forbidden: this event belongs to someone else, or to nobody.\n")
    with caplog.at_level(logging.WARNING, logger="chatapp.web"):
        assert stream_refusal(chat, f"{API}/call/usage/{event}", cookie=bob) == not_yours
    assert f"refused {API}/call/usage/{event}: event {event[:6]}… is not this caller's" in caplog.text
    assert stream_refusal(chat, f"{API}/call/usage/unknown-event-id", cookie=bob) == not_yours, "nobody's id"
    assert stream_status(chat, f"{API}/call/usage/{event}", cookie=ada) == 200
    # Named-parameter calls (v2) too.
    answer = send(chat, "POST", f"{API}/call/v2/usage", json={}, cookie=ada)
    assert answer.status_code == 200, answer.text
    event = answer.json()["event_id"]
    assert stream_status(chat, f"{API}/call/v2/usage/{event}", cookie=bob) == 403
    assert stream_status(chat, f"{API}/call/v2/usage/{event}", cookie=ada) == 200


def test_an_upload_id_is_its_first_callers(chat, caplog):
    ada, bob = new_browser(chat), new_browser(chat)
    files = [("files", ("a.png", PNG, "image/png"))]
    upload = send(chat, "POST", f"{API}/upload", params={"upload_id": "ada-upload-1"}, files=files, cookie=ada)
    assert upload.status_code == 200, upload.text
    progress = f"{API}/upload_progress"
    assert stream_status(chat, progress, params={"upload_id": "ada-upload-1"}, cookie=bob) == 403
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="chatapp.web"):
        again = send(chat, "POST", f"{API}/upload", params={"upload_id": "ada-upload-1"}, files=files, cookie=bob)
    assert again.status_code == 403
    said = [r.getMessage() for r in caplog.records if "belongs to another caller" in r.getMessage()]
    assert said == [f"refused {API}/upload: session ada-up… belongs to another caller"], "what was refused, and where"


# -- body limits --------------------------------------------------------------------------------------------


def test_bodies_over_two_mib_are_refused_except_an_upload_of_images(chat):
    cookie = new_browser(chat)
    two_mib = b'{"event_id": "' + b"x" * (2 * 1024 * 1024 - 16) + b'"}'
    assert len(two_mib) == 2 * 1024 * 1024
    json_type = {"content-type": "application/json"}
    assert send(chat, "POST", f"{API}/reset", content=two_mib, headers=json_type, cookie=cookie).status_code == 200
    over = two_mib[:-2] + b'x"}'
    assert send(chat, "POST", f"{API}/reset", content=over, headers=json_type, cookie=cookie).status_code == 413
    big = PNG + b"\x00" * (3 * 1024 * 1024)  # one image of 3 MiB: within the upload route's own cap
    files = [("files", ("big.png", big, "image/png"))]
    assert send(chat, "POST", f"{API}/upload", files=files, cookie=cookie).status_code == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])  # no route takes OPTIONS: 404 first
@pytest.mark.parametrize(
    "declared", [{"content-length": "5"}, {"transfer-encoding": "chunked"}], ids=["length", "chunks"]
)
def test_a_request_of_a_method_without_a_body_that_declares_one_is_refused(chat, method, declared):
    """No route reads the body of a GET or HEAD, so such requests pass no body cap (a reply's stream is a GET):
    one that says a body follows is refused before the app sees it."""
    cookie = new_browser(chat)
    assert send(chat, method, f"{API}/info", cookie=cookie).status_code in (200, 405)  # the same without a body
    content = b"12345" if "content-length" in declared else iter([b"12", b"345"])
    answer = send(chat, method, f"{API}/info", content=content, headers=declared, cookie=cookie)
    assert answer.status_code == 413
    if method != "HEAD":
        assert answer.text == f"A {method} request carries no body.\n"


def test_an_answer_too_long_to_be_an_event_id_passes_whole(chat):
    """Gradio's validation error echoes the request: 100 kB, past what the Guard holds to read an event id."""
    answer = send(chat, "POST", f"{API}/call/usage", json={"data": "x" * 100_000}, cookie=new_browser(chat))
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["input"] == "x" * 100_000


@pytest.mark.parametrize("mode", ["iap", "password", "none"])
def test_each_mode_refuses_to_start_without_its_credential_check(mode):
    """A mis-wired front door fails at start, naming the setting, instead of letting requests through."""
    from chatapp.web import Guard

    with pytest.raises(ValueError, match=rf"^CHAT_AUTH={mode} needs "):
        Guard(lambda scope, receive, send: None, mode=mode)


def test_a_cross_site_preflight_is_not_taken_for_a_write(chat):
    """OPTIONS carries no cookie-borne action: it gets the route's ordinary answer (no rule here), not the
    cross-site refusal."""
    headers = {"sec-fetch-site": "cross-site", "origin": "http://evil.example"}
    answer = send(chat, "OPTIONS", "/config", cookie=new_browser(chat), headers=headers)
    assert (answer.status_code, answer.text) == (404, NOT_FOUND)


def test_when_every_event_id_is_in_use_a_new_one_is_refused_and_nobody_loses_theirs(tmp_path, monkeypatch):
    """A flood of events cannot evict the ids others are using: past the map's room a new event is refused
    with a 503 that says so, and the events already answered stay their callers'."""
    import functools

    import chatapp.server as server
    from chatapp.session_owners import SessionOwners

    monkeypatch.setattr(server, "SessionOwners", functools.partial(SessionOwners, capacity=3))
    with served(tmp_path, {"CHAT_AUTH": "none"}) as small:
        ada, mallory = new_browser(small), new_browser(small)
        adas = call(small, "usage", cookie=ada)
        floods = [call(small, "usage", cookie=mallory) for _ in range(2)]
        refused = send(small, "POST", f"{API}/call/usage", json={"data": []}, cookie=mallory)
        assert (refused.status_code, refused.text) == (503, "Too many events are open: try again in a minute.\n")
        assert stream_status(small, f"{API}/call/usage/{adas}", cookie=ada) == 200  # still hers
        assert stream_status(small, f"{API}/call/usage/{adas}", cookie=mallory) == 403
        assert len(set(floods)) == 2
