"""The chat's HTTP front, attacked through real chat processes in each CHAT_AUTH mode.

IAP mode uses real ES256 assertions signed by keys this test generates and serves as a JWK set on 127.0.0.1.
Each attack checks what the victim's stored conversation looks like afterwards, not only the status code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from gradio_client import Client

from chatapp.history.sqlite import SqliteStore
from harness.chat_process import ChatProcess, start_chat
from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import wait_until
from tests.security.iap_keys import PREFIX, KeyServer, SigningKey

LABEL = "Fake model"
ARGS = (LABEL, 0.7, 0.95, 256, "")
TIMEOUT = 60  # seconds per request: generous, the machine may be busy
KEY = SigningKey("iap-key")
STRANGER = SigningKey("iap-key")  # same key id, a key IAP never had

# Every kind of route: the page, Gradio's config and API, its session routes, and static files.
ROUTES = [
    ("GET", "/"),
    ("GET", "/config"),
    ("GET", "/gradio_api/info"),
    ("POST", "/gradio_api/queue/join"),
    ("GET", "/gradio_api/queue/data?session_hash=abc"),
    ("GET", "/gradio_api/heartbeat/abc"),
    ("POST", "/gradio_api/cancel"),
    ("POST", "/gradio_api/reset"),
    ("POST", "/gradio_api/call/chat"),
    ("GET", "/theme.css"),
]


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(tokens_per_s=400.0) as server:
        yield server


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    with KeyServer(KEY) as server:
        yield server


@pytest.fixture(scope="module")
def start(model: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    started: list[ChatProcess] = []

    def run(**env: str) -> ChatProcess:
        base = {"SELF_HOSTED_URL": model.base_url, "SELF_HOSTED_MODEL": model.model, "SELF_HOSTED_LABEL": LABEL}
        chat = start_chat({**base, **env}, tmp_path_factory.mktemp("chat"))
        started.append(chat)
        return chat

    yield run
    for chat in started:
        chat.stop(grace_s=3)


@pytest.fixture(scope="module")
def iap_chat(start, keys: KeyServer) -> ChatProcess:
    return start(CHAT_AUTH="iap", CHAT_IAP_AUDIENCE=PREFIX, CHAT_IAP_CERTS_URL=keys.jwk_url)


@pytest.fixture(scope="module")
def password_chat(start) -> ChatProcess:
    return start(CHAT_AUTH="password", CHAT_AUTH_USERS="ada:correct horse,bob:battery staple")


@pytest.fixture(scope="module")
def open_chat(start) -> ChatProcess:
    return start()


def iap(email: str = "ada@example.com", key: SigningKey = KEY, **claims) -> dict[str, str]:
    return {"x-goog-iap-jwt-assertion": key.assertion(email, **claims)}


def history(chat: ChatProcess) -> SqliteStore:
    return SqliteStore(Path(chat.env["CHAT_SQLITE_PATH"]))


def fn_index(client: Client, api_name: str) -> int:
    return next(i for i, dep in enumerate(client.config["dependencies"]) if dep.get("api_name") == api_name)


def stored(chat: ChatProcess, owner: str) -> list[tuple[str, list[str]]]:
    """Every conversation of `owner`: (title, message texts)."""
    store = history(chat)
    try:
        return [
            (s.title, [m.content for m in store.load_messages(s.session_id, owner)]) for s in store.list_sessions(owner)
        ]
    finally:
        store.close()


# -- IAP -------------------------------------------------------------------------------------------------------

BAD_ASSERTIONS = {
    "missing": {},
    "garbage": {"x-goog-iap-jwt-assertion": "garbage"},
    "expired": iap(issued=time.time() - 3600),
    "wrong audience": iap(audience="/projects/999/global/backendServices/1"),
    "wrong issuer": iap(issuer="https://accounts.google.com"),
    "forged signature": iap(key=STRANGER),
}


@pytest.mark.parametrize("kind", list(BAD_ASSERTIONS))
def test_iap_refuses_every_route_without_a_valid_assertion(iap_chat, kind):
    for method, path in ROUTES:
        response = requests.request(method, iap_chat.url + path, headers=BAD_ASSERTIONS[kind], json={}, timeout=TIMEOUT)
        assert response.status_code == 401, (kind, path, response.status_code)
        reason = response.text.strip()
        assert reason.startswith("Unauthorized: ") and "\n" not in reason, reason
    assert "Traceback" not in iap_chat.log()


def test_iap_health_checks_need_no_assertion(iap_chat):
    # Google's health checks and the kubelet carry no assertion.
    assert requests.get(f"{iap_chat.url}/healthz", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{iap_chat.url}/readyz", timeout=TIMEOUT).status_code == 200


def test_iap_one_person_on_two_devices_sees_one_list_another_person_none(iap_chat):
    laptop = Client(iap_chat.url, headers=iap("ada@example.com"), verbose=False)
    phone = Client(iap_chat.url, headers=iap("Ada@Example.com"), verbose=False)
    bob = Client(iap_chat.url, headers=iap("bob@example.com"), verbose=False)

    assert laptop.predict("ada's plan", *ARGS, api_name="/chat") == "You said: ada's plan"
    [(title, _)] = stored(iap_chat, "user:ada@example.com")
    assert title == "ada's plan"
    (session,) = history(iap_chat).list_sessions("user:ada@example.com")
    # The same person on another device continues the same conversation...
    resumed = phone.predict(session.session_id, api_name="/resume")
    assert [m["content"] for m in resumed] == ["ada's plan", "You said: ada's plan"]
    assert phone.predict("from the phone", *ARGS, api_name="/chat") == "You said: from the phone"
    # ...another person can neither open it nor see it, and has nothing of hers.
    with pytest.raises(Exception, match="No such conversation"):
        bob.predict(session.session_id, api_name="/resume")
    assert stored(iap_chat, "user:bob@example.com") == []
    assert stored(iap_chat, "user:ada@example.com") == [
        ("ada's plan", ["ada's plan", "You said: ada's plan", "from the phone", "You said: from the phone"])
    ]


def test_iap_replayed_session_hash_is_refused_and_the_victims_conversation_is_untouched(iap_chat):
    victim = Client(iap_chat.url, headers=iap("victim@example.com"), verbose=False)
    assert victim.predict("victim's secret", *ARGS, api_name="/chat") == "You said: victim's secret"
    before = stored(iap_chat, "user:victim@example.com")
    attacker = iap("mallory@example.com")
    stolen = victim.session_hash
    chat_fn = fn_index(victim, "chat")

    attempts = [
        requests.post(
            f"{iap_chat.url}/gradio_api/queue/join",
            json={"data": ["planted by mallory", *ARGS], "fn_index": chat_fn, "session_hash": stolen},
            headers=attacker,
            timeout=TIMEOUT,
        ),
        requests.post(
            f"{iap_chat.url}/gradio_api/call/chat",
            json={"data": ["planted by mallory", *ARGS], "session_hash": stolen},
            headers=attacker,
            timeout=TIMEOUT,
        ),
        requests.get(
            f"{iap_chat.url}/gradio_api/queue/data", params={"session_hash": stolen}, headers=attacker, timeout=10
        ),
        requests.get(f"{iap_chat.url}/gradio_api/heartbeat/{stolen}", headers=attacker, timeout=TIMEOUT),
        requests.post(
            f"{iap_chat.url}/gradio_api/cancel",
            json={"session_hash": stolen, "fn_index": chat_fn, "event_id": "x"},
            headers=attacker,
            timeout=TIMEOUT,
        ),
    ]
    assert [a.status_code for a in attempts] == [403] * len(attempts)
    assert all("belongs to someone else" in a.text for a in attempts)
    # The victim's conversation is exactly what it was, and the victim carries on in the same session.
    assert stored(iap_chat, "user:victim@example.com") == before
    assert victim.predict("still mine", *ARGS, api_name="/chat") == "You said: still mine"
    assert stored(iap_chat, "user:mallory@example.com") == []


# -- password --------------------------------------------------------------------------------------------------


def login(chat: ChatProcess, user: str, password: str, **headers: str) -> requests.Response:
    return requests.post(
        f"{chat.url}/login", data={"username": user, "password": password}, headers=headers, timeout=10
    )


def test_password_brute_force_is_limited_per_user_name(start):
    chat = start(
        CHAT_AUTH="password", CHAT_AUTH_USERS="ada:correct horse,bob:battery staple", CHAT_TRUSTED_PROXY="true"
    )
    # The attacker rotates the address it claims; the balancer appends the real hops after it.
    for attempt in range(10):
        forwarded = f"203.0.113.{attempt}, 35.191.0.1"
        assert login(chat, "ada", f"guess {attempt}", **{"X-Forwarded-For": forwarded}).status_code == 400
    refused = login(chat, "ada", "correct horse", **{"X-Forwarded-For": "198.51.100.7, 35.191.0.1"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "set-cookie" not in refused.headers  # the right password did not get in while limited
    # Another user from a fresh address is not locked out by ada's attacker.
    assert login(chat, "bob", "battery staple", **{"X-Forwarded-For": "198.51.100.8, 35.191.0.1"}).ok


def test_password_brute_force_is_limited_per_address_and_forwarded_for_is_ignored_unless_trusted(start):
    chat = start(CHAT_AUTH="password", CHAT_AUTH_USERS="ada:correct horse,bob:battery staple")
    # Without CHAT_TRUSTED_PROXY a claimed X-Forwarded-For is the client's word: every attempt is 127.0.0.1's.
    for attempt in range(10):
        name = f"user{attempt}"
        assert login(chat, name, "x", **{"X-Forwarded-For": f"203.0.113.{attempt}"}).status_code == 400
    refused = login(chat, "bob", "battery staple")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Traceback" not in chat.log()


def test_session_cookies_are_lax_and_secure_over_https(start):
    chat = start(CHAT_AUTH="password", CHAT_AUTH_USERS="ada:correct horse", CHAT_TRUSTED_PROXY="true")
    over_http = login(chat, "ada", "correct horse")
    over_https = login(chat, "ada", "correct horse", **{"X-Forwarded-Proto": "https"})
    for response in (over_http, over_https):
        cookies = response.raw.headers.getlist("set-cookie")
        assert cookies and all("samesite=lax" in c.lower() for c in cookies), cookies
        assert not any("samesite=none" in c.lower() for c in cookies)
    assert all("; secure" in c.lower() for c in over_https.raw.headers.getlist("set-cookie"))


def test_sign_out_ends_the_session_on_the_server(password_chat):
    with requests.Session() as browser:
        signed_in = browser.post(
            f"{password_chat.url}/login", data={"username": "bob", "password": "battery staple"}, timeout=10
        )
        assert signed_in.ok
        stolen = dict(browser.cookies)  # what a copied cookie jar would hold
        assert browser.get(f"{password_chat.url}/config", timeout=TIMEOUT).status_code == 200
        browser.get(f"{password_chat.url}/logout", timeout=TIMEOUT)
    # The same cookies, replayed after sign-out, no longer open anything.
    assert requests.get(f"{password_chat.url}/config", cookies=stolen, timeout=TIMEOUT).status_code == 401


def test_uploads_need_a_sign_in(password_chat):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    upload = requests.post(f"{password_chat.url}/gradio_api/upload", files={"files": ("a.png", png)}, timeout=TIMEOUT)
    assert upload.status_code == 401
    progress = requests.get(f"{password_chat.url}/gradio_api/upload_progress?upload_id=x", timeout=TIMEOUT)
    assert progress.status_code == 401


def test_password_session_routes_need_a_sign_in(password_chat):
    for path, body in [
        ("/gradio_api/cancel", {"session_hash": "abc", "fn_index": 0, "event_id": "x"}),
        ("/gradio_api/reset", {"event_id": "x"}),
    ]:
        response = requests.post(password_chat.url + path, json=body, timeout=TIMEOUT)
        assert response.status_code == 401, path
    assert requests.get(f"{password_chat.url}/gradio_api/heartbeat/abc", timeout=TIMEOUT).status_code == 401
    assert requests.get(f"{password_chat.url}/config", timeout=TIMEOUT).status_code == 401


# -- every mode --------------------------------------------------------------------------------------------------


def test_cancel_with_a_stolen_session_hash_does_not_stop_the_victims_reply(start, model):
    slow = FakeOpenAIServer(tokens_per_s=25.0, reply=" ".join(f"word{i}" for i in range(40)))
    with slow:
        chat = start(SELF_HOSTED_URL=slow.base_url, SELF_HOSTED_MODEL=slow.model)
        victim = Client(chat.url, verbose=False)
        job = victim.submit("tell me a long story", *ARGS, api_name="/chat")
        wait_until(lambda: slow.chat_requests(), 60, "the victim's reply to reach the model")  # it is streaming
        attacker = requests.Session()  # another browser: its own cookie
        response = attacker.post(
            f"{chat.url}/gradio_api/cancel",
            json={"session_hash": victim.session_hash, "fn_index": fn_index(victim, "chat"), "event_id": "x"},
            timeout=TIMEOUT,
        )
        assert response.status_code == 403
        reply = job.result(timeout=30)
        assert reply == slow.reply
        owner = f"browser:{victim.cookies['hybrid-chat-browser']}"
        assert stored(chat, owner) == [("tell me a long story", ["tell me a long story", slow.reply])]


def test_no_anonymous_browser_id_is_accepted_in_the_signed_in_modes(iap_chat, password_chat):
    forged = {"Cookie": "hybrid-chat-browser=" + "a" * 32}
    assert requests.get(f"{iap_chat.url}/config", headers=forged, timeout=TIMEOUT).status_code == 401
    assert requests.get(f"{password_chat.url}/config", headers=forged, timeout=TIMEOUT).status_code == 401


def test_anonymous_browser_gets_an_httponly_random_id(open_chat):
    first = requests.get(open_chat.url + "/", timeout=TIMEOUT)
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("hybrid-chat-browser=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    second = requests.get(open_chat.url + "/", timeout=TIMEOUT)
    assert second.cookies["hybrid-chat-browser"] != first.cookies["hybrid-chat-browser"]
    # A browser that has one the chat minted keeps it; one the chat did not mint is replaced.
    kept = requests.get(
        open_chat.url + "/", cookies={"hybrid-chat-browser": first.cookies["hybrid-chat-browser"]}, timeout=TIMEOUT
    )
    assert "set-cookie" not in kept.headers
    for planted in ("b" * 32, "../x"):
        replaced = requests.get(open_chat.url + "/", cookies={"hybrid-chat-browser": planted}, timeout=TIMEOUT)
        assert replaced.cookies["hybrid-chat-browser"] not in (planted, first.cookies["hybrid-chat-browser"])


@pytest.mark.parametrize("mode", ["open_chat", "password_chat", "iap_chat"])
def test_pages_forbid_framing_foreign_forms_and_remote_images(mode, request):
    chat = request.getfixturevalue(mode)
    response = requests.get(chat.url + "/", headers=iap() if mode == "iap_chat" else {}, timeout=TIMEOUT)
    csp = {d.split()[0]: d.split()[1:] for d in response.headers["content-security-policy"].split("; ")}
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:", "blob:"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_foreign_origin_gets_no_credentialed_access(open_chat):
    # Host is not localhost, as behind the load balancer: Gradio's own CORS handling would echo the origin.
    headers = {"Origin": "https://evil.example", "Host": "chat.example.com"}
    response = requests.get(f"{open_chat.url}/config", headers=headers, timeout=TIMEOUT)
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    preflight = requests.options(
        f"{open_chat.url}/gradio_api/queue/join",
        headers={**headers, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        timeout=TIMEOUT,
    )
    assert preflight.headers.get("access-control-allow-origin") in (None, "null")
    # A cross-site write (a form post or fetch from another site) is refused before any handler runs.
    write = requests.post(
        f"{open_chat.url}/gradio_api/queue/join",
        json={"data": [], "fn_index": 0, "session_hash": "x"},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert write.status_code == 403


def test_uploads_take_images_only_and_large_bodies_refused_before_parsing(open_chat):
    upload = requests.post(
        f"{open_chat.url}/gradio_api/upload", files={"files": ("a.png", b"<html>" + b"x" * 1000)}, timeout=TIMEOUT
    )
    assert (upload.status_code, upload.text.strip()) == (
        415,
        "Only PNG, JPEG, WebP or GIF images can be attached (judged by their content).",
    )
    big = b'{"data": ["' + b"x" * (3 * 1024 * 1024) + b'"]}'
    declared = requests.post(
        f"{open_chat.url}/gradio_api/call/chat", data=big, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(48):
            yield b"x" * 65536

    chunked = requests.post(
        f"{open_chat.url}/gradio_api/queue/join",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert chunked.status_code == 413
    assert requests.get(f"{open_chat.url}/healthz", timeout=TIMEOUT).status_code == 200
