"""Who is calling, in the signed-in modes (`chatapp.web`, `chatapp.identity`), checked in this process at the HTTP
boundary: password sign-in and its limits, the trusted proxy's client address, and IAP. The owner a request is
answered for is read back through the chat's `usage` API, against tokens the store holds per owner."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chatapp import identity
from chatapp.history.sqlite import SqliteStore
from tests.security.iap_keys import AUDIENCE, KeyServer, SigningKey
from tests.security.inprocess import API, send, served, store_with_usage, stream_status, usage_report

USERS = {"ada": "ada-correct-horse", "bob": "bob-battery-staple"}
PASSWORD = {"CHAT_AUTH": "password", "CHAT_AUTH_USERS": ",".join(f"{u}:{p}" for u, p in USERS.items())}
IAP_HEADER = "x-goog-iap-jwt-assertion"


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Password sign-in behind the trusted proxy; each test signs in from addresses of its own."""
    folder = tmp_path_factory.mktemp("password-chat")
    store = store_with_usage(folder, {"user:ada": 4321, "user:bob": 17})
    with served(folder, {**PASSWORD, "CHAT_TRUSTED_PROXY": "true"}, store=store) as client:
        yield client


def via(address: str) -> dict[str, str]:
    """As Google's load balancer forwards it: what the client claimed, the client, the balancer."""
    return {"x-forwarded-for": f"203.0.113.99, {address}, 130.211.0.1"}


def login(client: TestClient, user: str, password: str, headers: dict[str, str]):
    return send(client, "POST", "/login", data={"username": user, "password": password}, headers=headers)


def signed_in(client: TestClient, user: str, address: str) -> str:
    answer = login(client, user, USERS[user], via(address))
    assert answer.status_code == 200, answer.text
    return "; ".join(f"{name}={value}" for name, value in answer.cookies.items())


def test_a_signed_in_person_is_answered_as_themselves(chat):
    assert usage_report(chat, signed_in(chat, "ada", "10.0.0.1"))["tokens_today"] == 4321
    assert usage_report(chat, signed_in(chat, "bob", "10.0.0.1"))["tokens_today"] == 17


def test_without_a_sign_in_only_the_page_and_its_files_answer(chat):
    assert send(chat, "GET", "/").status_code == 200  # the sign-in page
    assert send(chat, "GET", "/theme.css").status_code == 200
    refused = send(chat, "GET", "/config")
    assert (refused.status_code, refused.text) == (401, "Unauthorized: sign in first.\n")
    # Answered at once, not by a stream that waits (the heartbeat route would hold the connection).
    assert stream_status(chat, f"{API}/heartbeat/anyone-1") == 401
    assert stream_status(chat, f"{API}/queue/data", params={"session_hash": "anyone-1"}) == 401
    assert send(chat, "POST", f"{API}/upload", files=[("files", ("a.png", b"x", "image/png"))]).status_code == 401


def test_sign_in_cookies_are_lax_and_secure_when_the_proxy_says_https(chat):
    plain = login(chat, "bob", USERS["bob"], via("10.0.1.1"))
    cookies = plain.headers.get_list("set-cookie")
    assert cookies and all("samesite=lax" in c.lower() for c in cookies), cookies
    # Gradio's plain-HTTP cookie stays usable over plain HTTP (its other one is always Secure).
    assert any("; secure" not in c.lower() for c in cookies), cookies
    https = login(chat, "bob", USERS["bob"], {**via("10.0.1.1"), "x-forwarded-proto": "HTTPS"})
    cookies = https.headers.get_list("set-cookie")
    assert cookies and all("; secure" in c.lower() for c in cookies), cookies


def test_failed_sign_ins_are_limited_per_name_as_sign_in_reads_it(chat):
    """Ten failures for " ADA " and "Ada" (sign-in strips the name, the limit case-folds it), each from another
    address: the eleventh attempt as ada is refused even with her password; bob is not."""
    for n, name in enumerate([" ADA ", "Ada"] * 5):
        assert login(chat, name, "wrong", via(f"10.1.0.{n}")).status_code != 200
    refused = login(chat, "ada", USERS["ada"], via("10.1.1.1"))
    assert (refused.status_code, refused.text) == (429, "Too many failed sign-in attempts: try again later.\n")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert login(chat, "bob", USERS["bob"], via("10.1.1.1")).status_code == 200


def test_failed_sign_ins_are_limited_per_client_address_the_balancer_saw(chat):
    for n in range(10):  # the client claims a new address each time: the hop the balancer added stays
        headers = {"x-forwarded-for": f"198.51.100.{n}, 10.2.0.1, 130.211.0.1"}
        assert login(chat, f"someone{n}", "wrong", headers).status_code != 200
    assert login(chat, "bob", USERS["bob"], via("10.2.0.1")).status_code == 429
    assert login(chat, "bob", USERS["bob"], via("10.2.0.2")).status_code == 200, "another address is not locked"


def test_successful_sign_ins_are_not_counted(chat):
    for _ in range(12):
        assert login(chat, "bob", USERS["bob"], via("10.3.0.1")).status_code == 200


def test_a_form_that_names_the_user_twice_is_refused(chat):
    form = f"username=bob&username=ada&password={USERS['bob']}"
    headers = {**via("10.4.0.1"), "content-type": "application/x-www-form-urlencoded"}
    answer = send(chat, "POST", "/login", content=form, headers=headers)
    assert answer.status_code == 400, answer.text


def test_without_the_trusted_proxy_forwarded_for_is_the_clients_word(tmp_path: Path):
    with served(tmp_path, PASSWORD) as chat:
        for n in range(10):
            assert login(chat, f"someone{n}", "wrong", via(f"10.5.0.{n}")).status_code != 200
        assert login(chat, "bob", USERS["bob"], via("10.5.1.1")).status_code == 429


def test_failed_sign_ins_count_on_every_replica(tmp_path: Path):
    """Two replicas over one store (as the stack runs them): ten failures on one lock the name on the other."""
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    shared = tmp_path / "shared.sqlite3"
    with (
        served(tmp_path / "one", PASSWORD, store=SqliteStore(shared)) as one,
        served(tmp_path / "two", PASSWORD, store=SqliteStore(shared)) as two,
    ):
        for n in range(10):
            assert login(one, "ada", "wrong", via(f"10.6.0.{n}")).status_code != 200
        refused = login(two, "ada", USERS["ada"], via("10.6.1.1"))
        assert (refused.status_code, refused.text) == (429, "Too many failed sign-in attempts: try again later.\n")


# -- IAP --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, SigningKey]]:
    key = SigningKey("promises-key")
    folder = tmp_path_factory.mktemp("iap-chat")
    store = store_with_usage(folder, {"user:ada@example.com": 555})
    with KeyServer(key) as keys:
        env = {"CHAT_AUTH": "iap", "CHAT_IAP_AUDIENCE": AUDIENCE, "CHAT_IAP_CERTS_URL": keys.jwk_url}
        with served(folder, env, store=store) as client:
            yield client, key


def test_iap_answers_the_verified_person_and_refuses_everyone_else(iap, caplog):
    chat, key = iap
    ada = {IAP_HEADER: key.assertion("Ada@Example.com")}
    assert usage_report(chat, headers=ada)["tokens_today"] == 555
    missing = send(chat, "GET", "/config")
    assert missing.status_code == 401 and missing.text.startswith("Unauthorized: ") and missing.text.endswith(".\n")
    assert send(chat, "GET", "/config", headers={IAP_HEADER: "not-a-jwt"}).status_code == 401
    other = {IAP_HEADER: key.assertion("ada@example.com", audience=AUDIENCE + "0")}
    with caplog.at_level(logging.INFO, logger="chatapp.web"):
        wrong_audience = send(chat, "GET", "/config", headers=other)
    assert wrong_audience.status_code == 401
    reason = wrong_audience.text.removeprefix("Unauthorized: ").removesuffix(".\n")
    assert reason and f"refused GET /config: {reason}" in caplog.text, "the log says why, as the answer does"
    assert send(chat, "GET", "/healthz").status_code == 200, "health checks carry no assertion"


# -- the owner id handlers use -------------------------------------------------------------------------------


def test_the_owner_id_of_a_request():
    class Request:
        def __init__(self, username: object) -> None:
            self.username = username

    assert identity.caller(Request("ada")) == "user:ada"
    assert identity.caller(Request("user:ada@example.com")) == "user:ada@example.com"
    assert identity.caller(Request("browser:0123")) == "browser:0123"
    for nobody in (None, object(), Request(None), Request(""), Request(42)):
        with pytest.raises(identity.NotSignedIn) as refused:
            identity.caller(nobody)
        # What the person reads, and no traceback in the log for it (an expected refusal, not a fault).
        assert refused.value.message == "You are not signed in (or your sign-in expired): reload the page."
        assert refused.value.print_exception is False


# Each sign-in mode's own check, the exact sentence a mis-wired start-up stops with, and no other mode's check.
MODE_CHECKS = {
    "iap": ("iap", "CHAT_AUTH=iap needs an IapVerifier"),
    "password": ("password_user", "CHAT_AUTH=password needs a way to read the signed-in user"),
    "none": ("browser_ids", "CHAT_AUTH=none needs a key to sign browser ids with"),
}


@pytest.mark.parametrize("mode", MODE_CHECKS)
def test_each_mode_needs_exactly_its_own_check_and_keeps_what_it_was_given(mode):
    name, message = MODE_CHECKS[mode]
    with pytest.raises(ValueError) as refused:
        identity.Callers(mode)
    assert str(refused.value) == message
    given = object()
    callers = identity.Callers(mode, **{name: given})  # the other modes' checks are not asked for
    assert callers.mode == mode and getattr(callers, name) is given
    assert all(getattr(callers, other) is None for other, _ in MODE_CHECKS.values() if other != name)
