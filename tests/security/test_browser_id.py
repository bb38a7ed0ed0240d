"""Issue 15 row 8 and the `CHAT_AUTH=none` promises of issue 19: the browser id (that mode's only credential) is
minted by the server alone, so a page that plants a known id in a victim's browser reads nothing of theirs; the
cookie is `Secure` over HTTPS; cross-site writes are refused even without an Origin; pages may only connect back
to the chat; a session hash is its first caller's, and the oldest are the ones forgotten."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chatapp.browser_id import BrowserIds, load_key
from chatapp.history.sqlite import SqliteStore
from chatapp.session_owners import SessionOwners
from harness.chat_process import ChatProcess, start_chat
from harness.fakes.openai_server import FakeOpenAIServer
from tests.security.wire import fn_index

LABEL = "Fake model"
ARGS = [LABEL, 0.7, 0.95, 256, ""]
COOKIE = "hybrid-chat-browser"
TIMEOUT = 60


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatProcess]:
    with FakeOpenAIServer(tokens_per_s=1000.0) as model:
        env = {
            "SELF_HOSTED_URL": model.base_url,
            "SELF_HOSTED_MODEL": model.model,
            "SELF_HOSTED_LABEL": LABEL,
            "CHAT_TRUSTED_PROXY": "true",
        }
        process = start_chat(env, tmp_path_factory.mktemp("open"))
        yield process
        process.stop(grace_s=3)


def owners(chat: ChatProcess) -> dict[str, list[str]]:
    """Every owner in the store → its conversations' titles."""
    path = Path(chat.env["CHAT_SQLITE_PATH"])
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT DISTINCT owner FROM sessions").fetchall()
    store = SqliteStore(path)
    try:
        return {owner: [s.title for s in store.list_sessions(owner)] for (owner,) in rows}
    finally:
        store.close()


def browser(chat: ChatProcess, planted: str | None = None) -> requests.Session:
    """A browser with cookie storage; `planted` is a browser-id cookie another page set in it beforehand."""
    http = requests.Session()
    if planted is not None:
        http.cookies.set(COOKIE, planted, domain="127.0.0.1", path="/")
    return http


def call(http: requests.Session, url: str, api: str, data: list) -> object:
    """Gradio's REST form: POST the inputs, then read the event's stream to its `complete` output."""
    posted = http.post(f"{url}/gradio_api/call/{api}", json={"data": data}, timeout=TIMEOUT)
    assert posted.status_code == 200, posted.text
    with http.get(f"{url}/gradio_api/call/{api}/{posted.json()['event_id']}", stream=True, timeout=TIMEOUT) as events:
        assert events.status_code == 200, events.text
        lines = list(events.iter_lines(decode_unicode=True))
    assert "event: complete" in lines, lines
    return json.loads(lines[lines.index("event: complete") + 1].partition(":")[2])


def test_row8_a_planted_browser_id_is_replaced_and_the_planter_reads_nothing(chat):
    attacker = browser(chat)
    attacker.get(f"{chat.url}/config", timeout=TIMEOUT)
    minted_for_attacker = attacker.cookies[COOKIE]
    for planted in ("a" * 32, minted_for_attacker.split(".")[0], "0" * 32 + "." + "0" * 32):
        victim = browser(chat, planted)
        victim.get(f"{chat.url}/config", timeout=TIMEOUT)
        secret = f"victim's secret {planted[:4]}"
        assert call(victim, chat.url, "chat", [secret, *ARGS])[0] == f"You said: {secret}"
        # The planter asks for the conversations of the id it planted: there are none.
        assert call(browser(chat, planted), chat.url, "conversations", [])[0] == [], "the planter read the victim's"
        stored = owners(chat)
        assert f"browser:{planted}" not in stored
        assert stored[f"browser:{victim.cookies[COOKIE]}"] == [f"victim's secret {planted[:4]}"]
        assert victim.cookies[COOKIE] != planted  # /config answered a fresh, server-minted id


def test_the_browser_cookie_is_secure_over_https_only(chat):
    over_https = requests.get(f"{chat.url}/", headers={"X-Forwarded-Proto": "https"}, timeout=TIMEOUT)
    over_http = requests.get(f"{chat.url}/", timeout=TIMEOUT)
    assert "; Secure" in over_https.headers["set-cookie"]
    assert "secure" not in over_http.headers["set-cookie"].lower()


def test_a_cross_site_write_is_refused_even_without_an_origin(chat):
    http = browser(chat)
    http.get(f"{chat.url}/config", timeout=TIMEOUT)
    body = {"data": ["cross-site", *ARGS], "fn_index": fn_index(http, chat.url, "chat"), "session_hash": "xsite"}
    before = owners(chat)
    answer = http.post(
        f"{chat.url}/gradio_api/queue/join", json=body, headers={"Sec-Fetch-Site": "cross-site"}, timeout=TIMEOUT
    )
    assert answer.status_code == 403 and "Cross-site" in answer.text
    assert owners(chat) == before


def test_pages_connect_only_back_to_the_chat(chat):
    page = requests.get(f"{chat.url}/", timeout=TIMEOUT)
    csp = {d.split()[0]: d.split()[1:] for d in page.headers["content-security-policy"].split("; ")}
    assert csp["connect-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]


def test_ids_minted_with_another_key_are_refused(tmp_path: Path):
    ours, theirs = BrowserIds(b"k" * 32), BrowserIds(b"j" * 32)
    minted = ours.mint()
    assert ours.valid(minted) and not theirs.valid(minted)
    assert not ours.valid(minted[:-1] + ("0" if minted[-1] != "0" else "1"))
    # Without CHAT_SECRET_KEY a laptop keeps one key across restarts, in a file only its user reads.
    key_file = tmp_path / "history.sqlite3.key"
    assert load_key(None, key_file) == load_key(None, key_file)
    assert key_file.stat().st_mode & 0o077 == 0
    assert load_key("s" * 32, key_file) == b"s" * 32


def test_the_session_map_forgets_only_ids_no_longer_in_use():
    clock = [0.0]
    owners = SessionOwners(capacity=3, live_s=60, clock=lambda: clock[0])
    for key in ("first", "second", "third"):
        assert owners.claim(key, "user:ada")
    assert not owners.claim("fourth", "user:ada")  # full of ids in use: a new one waits, none is evicted
    clock[0] = 30
    assert owners.claim("first", "user:ada")  # still in use: now the most recent
    clock[0] = 70
    assert owners.claim("fourth", "user:ada")  # "second" was idle longest, and past live_s
    assert owners.owner("second") is None
    assert [owners.owner(k) for k in ("first", "third", "fourth")] == ["user:ada"] * 3
    assert not owners.claim("first", "user:bob")
