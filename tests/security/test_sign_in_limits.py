"""Issue 15 rows 3 and 4, and the sign-in promises of issue 19: failed sign-ins are counted on the name Gradio's
login actually signs in with, read from the form browsers send (multipart) as well as URL-encoded; each client
address has its own count, which behind the load balancer is the hop the balancer added, not the client's word."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from harness.chat_process import ChatProcess, start_chat

# One chat for the module: each test has its own people and addresses, so their counts never meet.
PASSWORDS = {name: f"{name}'s correct horse" for name in ("ada", "bob", "cy", "dee", "eve", "fay", "gus")}
USERS = ",".join(f"{name}:{password}" for name, password in PASSWORDS.items())
TIMEOUT = 30
BALANCER = "35.191.0.1"


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatProcess]:
    env = {"CHAT_AUTH": "password", "CHAT_AUTH_USERS": USERS, "CHAT_TRUSTED_PROXY": "true"}
    process = start_chat(env, tmp_path_factory.mktemp("sign-in"))
    yield process
    process.stop(grace_s=3)


def from_client(address: str, claimed: str = "") -> dict[str, str]:
    """Headers as the load balancer passes them: whatever the client claimed, then the client, then itself."""
    return {"X-Forwarded-For": ", ".join(h for h in (claimed, address, BALANCER) if h)}


def multipart(chat: ChatProcess, user: str, password: str, address: str, claimed: str = "") -> requests.Response:
    """A sign-in as a browser sends it: multipart/form-data."""
    fields = {"username": (None, user), "password": (None, password)}
    return requests.post(f"{chat.url}/login", files=fields, headers=from_client(address, claimed), timeout=TIMEOUT)


def signed_in(response: requests.Response) -> bool:
    return response.status_code == 200 and any(c.startswith("access-token") for c in response.cookies.get_dict())


def test_row3_browser_failures_of_other_names_never_lock_out_ada_from_her_own_address(chat):
    for attempt in range(12):
        assert multipart(chat, f"guess{attempt}", "x", "203.0.113.7").status_code in (400, 429)
    # The attacker's address is limited; ada, from hers, signs in with the browser's form.
    assert multipart(chat, "bob", PASSWORDS["bob"], "203.0.113.7").status_code == 429
    assert signed_in(multipart(chat, "ada", PASSWORDS["ada"], "198.51.100.20"))


def test_row3_browser_failures_for_cy_are_counted_for_cy(chat):
    for attempt in range(10):
        assert multipart(chat, "cy", f"guess {attempt}", f"203.0.113.{10 + attempt}").status_code == 400
    refused = multipart(chat, "cy", PASSWORDS["cy"], "198.51.100.30")
    assert refused.status_code == 429 and not signed_in(refused)
    assert signed_in(multipart(chat, "dee", PASSWORDS["dee"], "198.51.100.31"))


@pytest.mark.parametrize("form", ["urlencoded", "multipart"])
def test_row4_a_name_sent_twice_is_refused_not_counted_on_the_decoy(chat, form):
    fields = [("username", "decoy"), ("username", "eve"), ("password", PASSWORDS["eve"])]
    if form == "urlencoded":
        answer = requests.post(f"{chat.url}/login", data=fields, headers=from_client("203.0.113.40"), timeout=TIMEOUT)
    else:
        multi = [(name, (None, value)) for name, value in fields]
        answer = requests.post(f"{chat.url}/login", files=multi, headers=from_client("203.0.113.40"), timeout=TIMEOUT)
    assert answer.status_code == 400 and not signed_in(answer)
    assert "'username' more than once" in answer.text


def test_the_per_user_limit_counts_the_stripped_name_sign_in_uses(chat):
    # Gradio signs " fay " in as fay: guesses in those spellings are guesses at fay's password.
    spellings = [" fay", "fay ", "\tfay", " fay\t", "  fay"]
    for attempt in range(10):
        answer = multipart(chat, spellings[attempt % 5], f"guess {attempt}", f"203.0.113.{50 + attempt}")
        assert answer.status_code == 400
    assert multipart(chat, "fay", PASSWORDS["fay"], "198.51.100.50").status_code == 429


def test_behind_the_proxy_the_address_is_the_hop_the_balancer_added(chat):
    # The client rotates what it claims; the balancer still says who it is.
    for attempt in range(10):
        answer = multipart(chat, f"user{attempt}", "x", "198.51.100.60", claimed=f"203.0.113.{60 + attempt}")
        assert answer.status_code == 400
    assert multipart(chat, "gus", PASSWORDS["gus"], "198.51.100.60", claimed="192.0.2.1").status_code == 429
    # Another client behind the same balancer is not that client.
    assert signed_in(multipart(chat, "gus", PASSWORDS["gus"], "198.51.100.61", claimed="203.0.113.60"))
