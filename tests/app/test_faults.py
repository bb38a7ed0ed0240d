"""Faults of the model servers and of the history store, through the `/chat` API of a real chat process.

For every model fault: the user sees what happened (the words of the notice are asserted), another client
chatting with the other, healthy model at the same moment gets its normal reply within a few seconds, and
no turn the user was shown is lost: the earlier turn of the faulty conversation is still stored, a fault
that produced text stores that text (the partial reply), a fault that produced none stores nothing.

The self-hosted slot is the vLLM-shaped fake, Gemini the Vertex-shaped fake driven by the real google-genai
SDK; both are shared by the module and reset to "normal" after each test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from harness.firestore_emulator import FirestoreEmulator
from harness.support import free_port
from tests.app.helpers import (
    FAKE_LABEL,
    GEMINI_LABEL,
    Result,
    chat,
    conversation_of,
    healthy,
    new_session,
    owner_of,
    sqlite_path,
    stored_history,
    wait_until,
)

# Long enough that "half the reply" (the fakes cut at the middle token) is clearly a partial reply.
LONG = "please tell me about the weather in seven cities across three continents today"
PARTNER_DEADLINE_S = 5.0  # a healthy chat takes well under a second; a blocked one would take the fault's time


@pytest.fixture(scope="module")
def app(start_app: Any, app_env: dict[str, str]) -> ChatProcess:
    return start_app(app_env)


@pytest.fixture(autouse=True)
def normal_fakes(fake_model: FakeOpenAIServer, fake_gemini: tuple[FakeVertexServer, dict[str, str]]) -> Iterator[None]:
    yield
    fake_model.mode, fake_model.retry_after_s, fake_model.first_token_delay_s = "normal", 1.0, 3.0
    fake_gemini[0].mode = "normal"


@dataclass
class Outcome:
    fault: Result
    fault_s: float
    partner: Result
    partner_s: float
    partner_started_before_fault_ended: bool


def fault_beside_partner(
    url: str, fault_session: str, fault_model: str, partner_model: str, requests_seen: Any, message: str = LONG
) -> Outcome:
    """Send `message` to `fault_model`; once its model server has the request, chat with `partner_model` from
    another client and time both. `requests_seen()` counts requests the faulty server received (a dead server
    receives none: then the partner goes once the faulty call returned, which is at once)."""
    before = requests_seen()
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        fault = pool.submit(chat, url, message, fault_model, session_hash=fault_session)
        # Wait for the request to reach the faulty server (or fail to connect: dead port) before the partner goes.
        wait_until(lambda: requests_seen() > before or fault.done(), 30, "the faulty request to be sent")
        partner_session = new_session()
        partner_started = time.monotonic()
        partner = chat(url, f"partner of {fault_session}", partner_model, session_hash=partner_session)
        partner_s = time.monotonic() - partner_started
        overlapped = not fault.done()
        result = fault.result(timeout=60)
        fault_s = time.monotonic() - started
    return Outcome(result, fault_s, partner, partner_s, overlapped)


def assert_partner_unaffected(outcome: Outcome, partner_model: str, fault_session: str) -> None:
    expected = f"You said: partner of {fault_session}"
    if partner_model == GEMINI_LABEL:
        expected += " (1 messages in context)"
    assert outcome.partner.reply == expected
    assert outcome.partner_s < PARTNER_DEADLINE_S, f"the healthy chat took {outcome.partner_s:.1f} s"


def first_turn(url: str, session: str, model: str) -> str:
    """A normal turn before the fault, so the test can show it survives."""
    reply = chat(url, f"before the fault {session}", model, session_hash=session).reply
    assert "⚠️" not in reply
    return reply


def assert_history(app: ChatProcess, session: str, expected: list[str]) -> None:
    """The conversation of `session` holds exactly `expected` (message texts in order); the file is valid."""
    assert [r[1] for r in conversation_of(sqlite_path(app), session)] == expected


def openai_count(fake: FakeOpenAIServer) -> Any:
    return lambda: len(fake.chat_requests())


def vertex_count(fake: FakeVertexServer) -> Any:
    return lambda: len(fake.generate_requests())


# -- the self-hosted model ---------------------------------------------------------------------------------

SELF_HOSTED_FAULTS = [
    # (mode, words the user sees, whether text came before the fault (kept and stored))
    pytest.param(
        "loading",
        # Starting = waking (chatapp.models.waking); the offer of Gemini that follows is tests/app/test_scale_to_zero's.
        f"⚠️ {FAKE_LABEL} is waking up (asked 0 s ago; usually ready in about ",
        False,
        id="503-loading",
    ),
    pytest.param(
        "error_500",
        f"⚠️ {FAKE_LABEL} failed with a server error (HTTP 500): CUDA error: an illegal memory access was encountered",
        False,
        id="500",
    ),
    pytest.param(
        "bad_request",
        f"⚠️ {FAKE_LABEL} rejected the request (HTTP 400): top_p must be in (0, 1], got 0.0.",
        False,
        id="400-bad-request",
    ),
    pytest.param(
        "too_long",
        f"⚠️ Your message is too long for {FAKE_LABEL}: it reads at most 4,096 tokens at once, and this request"
        " has 9,000",
        False,
        id="400-context-too-long",
    ),
    pytest.param(
        "too_long_in_stream",
        f"⚠️ Your message is too long for {FAKE_LABEL}: it reads at most 4,096 tokens at once",
        False,
        id="200-then-context-too-long",
    ),
    pytest.param("cut", f"⚠️ The connection to {FAKE_LABEL} broke mid-reply (", True, id="cut-mid-stream"),
    pytest.param(
        "end_early",
        f"⚠️ {FAKE_LABEL} stopped before finishing the reply (the stream ended early).",
        True,
        id="ended-early",
    ),
    pytest.param(
        "error_event", f"⚠️ {FAKE_LABEL} failed while answering: The engine died", True, id="error-event-mid-stream"
    ),
]


@pytest.mark.parametrize(("mode", "words", "partial"), SELF_HOSTED_FAULTS)
def test_self_hosted_fault(
    app: ChatProcess, fake_model: FakeOpenAIServer, mode: str, words: str, partial: bool
) -> None:
    session = new_session()
    before = first_turn(app.url, session, FAKE_LABEL)
    fake_model.queue(mode)
    outcome = fault_beside_partner(app.url, session, FAKE_LABEL, GEMINI_LABEL, openai_count(fake_model))
    assert_partner_unaffected(outcome, GEMINI_LABEL, session)
    reply = outcome.fault.reply
    assert words in reply
    earlier = [f"before the fault {session}", before]
    if partial:
        text = reply.split("\n\n⚠️")[0]
        full = f"You said: {LONG}"
        assert text and full.startswith(text) and len(text) < len(full), f"not a partial reply: {text!r}"
        assert_history(app, session, [*earlier, LONG, text])  # the partial turn the user saw is saved
        # And the conversation goes on with it in context.
        chat(app.url, "go on", session_hash=session)
        sent = fake_model.chat_requests()[-1]["messages"]
        assert [m["content"] for m in sent] == [*earlier, LONG, text, "go on"]
    else:
        assert reply.startswith("⚠️")
        assert_history(app, session, earlier)  # nothing was generated, so nothing new is stored


def test_self_hosted_malformed_sse_line_is_skipped(app: ChatProcess, fake_model: FakeOpenAIServer) -> None:
    """One broken `data:` line mid-stream is skipped and logged; the rest of the reply arrives and is saved."""
    session = new_session()
    first_turn(app.url, session, FAKE_LABEL)
    fake_model.queue("malformed")
    outcome = fault_beside_partner(app.url, session, FAKE_LABEL, GEMINI_LABEL, openai_count(fake_model))
    assert_partner_unaffected(outcome, GEMINI_LABEL, session)
    assert outcome.fault.reply == f"You said: {LONG}"
    assert f"{FAKE_LABEL} sent a malformed stream line; skipped" in wait_until(
        lambda: "malformed stream line" in app.log() and app.log(), 10, "the warning in the log"
    )
    assert conversation_of(sqlite_path(app), session)[-1][1] == f"You said: {LONG}"


def test_self_hosted_429_is_retried_then_succeeds(app: ChatProcess, fake_model: FakeOpenAIServer) -> None:
    session = new_session()
    fake_model.retry_after_s = 1.0
    fake_model.queue("rate_limit")
    count = openai_count(fake_model)
    before = count()
    outcome = fault_beside_partner(app.url, session, FAKE_LABEL, GEMINI_LABEL, count)
    assert outcome.fault.reply == f"You said: {LONG}"  # the user just waited a second longer
    assert count() - before == 2, "one 429, then the retry that succeeded"
    assert outcome.fault_s >= 1.0  # it honoured Retry-After
    assert outcome.partner_started_before_fault_ended
    assert_partner_unaffected(outcome, GEMINI_LABEL, session)
    assert_history(app, session, [LONG, f"You said: {LONG}"])


def test_self_hosted_persistent_429_is_reported(app: ChatProcess, fake_model: FakeOpenAIServer) -> None:
    # Retry-After 6 s against the 12 s retry budget: one retry, then the second wait would overrun it.
    session = new_session()
    fake_model.retry_after_s = 6.0
    fake_model.mode = "rate_limit"
    count = openai_count(fake_model)
    before = count()
    outcome = fault_beside_partner(app.url, session, FAKE_LABEL, GEMINI_LABEL, count)
    assert outcome.fault.reply == (
        f"⚠️ {FAKE_LABEL} is busy (HTTP 429: Too many requests, slow down) and still was after retrying for 6 s; "
        "try again in a minute."
    )  # the time it really spent waiting, not the budget
    assert count() - before == 2
    assert outcome.partner_started_before_fault_ended
    assert_partner_unaffected(outcome, GEMINI_LABEL, session)
    assert not [o for o, _ in stored_history(sqlite_path(app)).values() if o == owner_of(session)]


def test_self_hosted_slow_first_token(app: ChatProcess, fake_model: FakeOpenAIServer) -> None:
    """A model that takes seconds before its first token: the reply still arrives whole; others don't wait."""
    session = new_session()
    fake_model.first_token_delay_s = 2.0
    fake_model.queue("slow_start")
    outcome = fault_beside_partner(app.url, session, FAKE_LABEL, GEMINI_LABEL, openai_count(fake_model))
    assert outcome.fault.reply == f"You said: {LONG}"
    assert outcome.fault_s >= 2.0
    assert outcome.partner_started_before_fault_ended
    assert_partner_unaffected(outcome, GEMINI_LABEL, session)
    assert_history(app, session, [LONG, f"You said: {LONG}"])


def test_self_hosted_server_down(start_app: Any, app_env: dict[str, str], fake_gemini: Any) -> None:
    """Nothing listens on the self-hosted URL (the GPU pod is not there): a clear notice, Gemini still works,
    and the status check reports it."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    down = start_app(app_env, SELF_HOSTED_URL=dead)
    session = new_session()
    outcome = fault_beside_partner(down.url, session, FAKE_LABEL, GEMINI_LABEL, lambda: 0)
    assert outcome.fault.reply == (
        f"⚠️ {FAKE_LABEL} is waking up (asked 0 s ago; usually ready in about 12 min, an estimate until one is "
        f"measured here). {GEMINI_LABEL} can answer meanwhile: choose {GEMINI_LABEL} (or Auto) and send it again "
        "(Retry)."
    )
    assert_partner_unaffected(outcome, GEMINI_LABEL, session)
    # The same conversation switches to Gemini and goes on; only that turn is stored.
    assert "You said: switching" in chat(down.url, "switching", GEMINI_LABEL, session_hash=session).reply
    assert conversation_of(sqlite_path(down), session)[0][1] == "switching"
    assert healthy(down.url)


# -- Gemini ------------------------------------------------------------------------------------------------

GEMINI_FAULTS = [
    pytest.param(
        "safety",
        f"⚠️ {GEMINI_LABEL} gave no reply because its safety filters blocked the reply (SAFETY).",
        id="safety-block",
    ),
    pytest.param(
        "prompt_blocked", f"⚠️ {GEMINI_LABEL} refused the prompt (SAFETY). Rephrase and try again.", id="prompt-blocked"
    ),
    pytest.param(
        "error_500",
        f"⚠️ {GEMINI_LABEL} had a server error (HTTP 500 INTERNAL: Internal error encountered.).",
        id="500",
    ),
    pytest.param(
        "rate_limit",  # no RetryInfo: waits 1, 2 and 4 s, then the next 8 s would overrun the 12 s budget
        f"⚠️ {GEMINI_LABEL} quota is exhausted (429 RESOURCE_EXHAUSTED: Resource exhausted. Please try again later.",
        id="quota-429",
    ),
]


@pytest.mark.parametrize(("mode", "words"), GEMINI_FAULTS)
def test_gemini_fault(
    app: ChatProcess, fake_gemini: tuple[FakeVertexServer, dict[str, str]], mode: str, words: str
) -> None:
    fake = fake_gemini[0]
    session = new_session()
    before = first_turn(app.url, session, GEMINI_LABEL)
    fake.mode = mode
    outcome = fault_beside_partner(app.url, session, GEMINI_LABEL, FAKE_LABEL, vertex_count(fake))
    assert_partner_unaffected(outcome, FAKE_LABEL, session)
    assert outcome.fault.reply.startswith(words)
    if mode == "rate_limit":
        assert "Try again in a minute or switch models." in outcome.fault.reply
    assert_history(app, session, [f"before the fault {session}", before])


# -- the history store -------------------------------------------------------------------------------------

NOT_SAVED = "This turn is not saved yet: the history store is unreachable. It will be retried."


WHEN = (" before the outage", " during the outage", " during the outage", " after the restart")


def test_firestore_stopped_mid_conversation_and_started_again(
    start_app: Any, app_env: dict[str, str], fake_model: FakeOpenAIServer, own_firestore_emulator: FirestoreEmulator
) -> None:
    """Turns sent while Firestore is down are answered, flagged "not saved yet … will be retried", and land
    in Firestore, in order and once each, after it comes back; /readyz says 503 during the outage.

    The emulator keeps data in memory, so a restarted emulator is EMPTY: the turn saved before the outage is
    verified in Firestore before stopping it, and after the restart only the queued and later turns can be
    (in production Firestore keeps it, of course). For the same reason the session document loses its owner
    (written with turn 0 only), so the final check reads the documents directly instead of load_messages().
    """
    from chatapp.history.firestore import FirestoreStore

    emulator = own_firestore_emulator
    database = f"faults-{uuid.uuid4().hex[:12]}"
    env = {
        "CHAT_STORE": "firestore",
        "FIRESTORE_EMULATOR_HOST": emulator.host,
        "GOOGLE_CLOUD_PROJECT": "demo-test",
        "FIRESTORE_DATABASE": database,
    }
    chat_app = start_app(app_env, **env)
    readyz = f"{chat_app.url}/readyz"
    assert requests.get(readyz, timeout=10).json() == {"status": "ok", "unsaved_turns": 0}
    session = new_session()

    def say(text: str) -> str:
        return chat(chat_app.url, text, session_hash=session, timeout=60).reply

    assert say("turn 1 before the outage") == "You said: turn 1 before the outage"
    owner = owner_of(session)
    store = FirestoreStore("demo-test", database)
    try:
        (summary,) = store.list_sessions(owner)
        session_id = summary.session_id
        saved_before = [(m.seq, m.content) for m in store.load_messages(session_id, owner)]
        assert saved_before == [(0, "turn 1 before the outage"), (1, "You said: turn 1 before the outage")]

        emulator.stop()
        wait_until(lambda: requests.get(readyz, timeout=10).status_code == 503, 20, "/readyz to report 503")
        during = [say("turn 2 during the outage"), say("turn 3 during the outage")]
        for n, reply in zip((2, 3), during, strict=True):
            assert reply.startswith(f"You said: turn {n} during the outage\n\n⚠️ ")
            assert reply.endswith(NOT_SAVED)
        assert healthy(chat_app.url)

        emulator.start()  # same port, empty
        wait_until(
            lambda: requests.get(readyz, timeout=10).json() == {"status": "ok", "unsaved_turns": 0},
            60,
            "/readyz 200 with every queued turn saved",
        )
        assert say("turn 4 after the restart") == "You said: turn 4 after the restart"  # saved at once: no notice

        messages = store.client.collection("chat_sessions").document(session_id).collection("messages")
        docs = [d.to_dict() for d in messages.order_by("seq").stream()]
        assert [(d["seq"], d["role"], d["content"]) for d in docs] == [
            (2, "user", "turn 2 during the outage"),
            (3, "assistant", "You said: turn 2 during the outage"),
            (4, "user", "turn 3 during the outage"),
            (5, "assistant", "You said: turn 3 during the outage"),
            (6, "user", "turn 4 after the restart"),
            (7, "assistant", "You said: turn 4 after the restart"),
        ]
        head = store.client.collection("chat_sessions").document(session_id).get().to_dict()
        assert head["turns"] == 4
        # The model saw every turn in context throughout: the conversation never depended on the store.
        context = [m["content"] for m in fake_model.chat_requests()[-1]["messages"]]
        assert context[::2] == [f"turn {n}" + rest for n, rest in enumerate(WHEN, 1)]
    finally:
        store.close()
