"""Scale to zero on this machine: the real chat process, its model server started and stopped by a stand-in for
KEDA (harness.autoscaler) that reads the chat's /metrics exactly as KEDA's query does, and the Vertex-shaped fake
as Gemini. One conversation goes through sleep → wake → ready → sleep: no message fails without being answered
or said why, none is answered twice (the stored conversation is checked), the wake counter rises for the
self-hosted model and Auto only, and what the chat says and exports matches each state.

The autoscaler is held (it sees demand but changes nothing) while the test asks for a state to last: "still
waking" while the self-hosted model is asked directly, "still up" while it answers. So no step depends on how
fast this machine is; released, it starts the model server after its delay, or stops it after the idle time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from chatapp.models.waking import duration
from harness.autoscaler import ModelServerProcess, StandInAutoscaler
from harness.chat_process import ChatProcess
from harness.fakes.vertex_server import FakeVertexServer
from harness.support import free_port
from tests.app.helpers import FAKE_LABEL, GEMINI_LABEL, chat, conversation_of, new_session, sqlite_path, wait_until

AUTO = "Auto (scale to zero)"
IDLE_S = 6.0
ESTIMATE = "usually ready in about 12 min, an estimate until one is measured here"
# The chat checks a sleeping server every 10 s (chatapp.status): a change shows within that, plus slack.
NOTICED_S = 40.0


def samples(app: ChatProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(app.metrics_url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def state(app: ChatProcess) -> str:
    """chat_self_hosted_state: the state the chat shows in its status list and messages."""
    shown = [
        dict(labels)["chat_self_hosted_state"]
        for (name, labels), value in samples(app).items()
        if name == "chat_self_hosted_state" and value == 1.0
    ]
    assert len(shown) == 1, f"chat_self_hosted_state shows {shown}"
    return shown[0]


def metric(app: ChatProcess, name: str) -> float:
    return samples(app).get((name, ()), 0.0)


@pytest.fixture(scope="module")
def model_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def app(start_app: Any, fake_gemini: tuple[FakeVertexServer, dict[str, str]], model_port: int) -> ChatProcess:
    return start_app(
        {
            "SELF_HOSTED_URL": f"http://127.0.0.1:{model_port}/v1",
            "SELF_HOSTED_MODEL": "fake-model",
            "SELF_HOSTED_LABEL": FAKE_LABEL,
            "GEMINI_MODEL": "gemini-3.8-flash",
            "GEMINI_LABEL": GEMINI_LABEL,
            "AUTO_LABEL": AUTO,
            **fake_gemini[1],
        }
    )


@pytest.fixture
def scaler(app: ChatProcess, model_port: int) -> Iterator[StandInAutoscaler]:
    server = ModelServerProcess.fake(model_port)
    with StandInAutoscaler(app.metrics_url, server, wake_delay_s=1.0, idle_s=IDLE_S) as running:
        yield running


def test_a_conversation_through_sleep_wake_ready_sleep(
    app: ChatProcess, scaler: StandInAutoscaler, fake_gemini: tuple[FakeVertexServer, dict[str, str]]
) -> None:
    gemini = fake_gemini[0]
    session = new_session()
    url = app.url
    scaler.hold()
    wait_until(lambda: state(app) == "asleep", NOTICED_S, "the chat to see the model server asleep")
    wanted = metric(app, "chat_self_hosted_wanted_total")

    # Asleep. Gemini chosen directly is no demand: the counter stays, the autoscaler sees nothing to wake.
    assert chat(url, "g1", GEMINI_LABEL, session_hash=session).reply == "You said: g1 (1 messages in context)"
    assert metric(app, "chat_self_hosted_wanted_total") == wanted
    scrapes = scaler.scrapes
    wait_until(lambda: scaler.scrapes >= scrapes + 2, 30, "two more scrapes of /metrics")
    assert scaler.happened("demand") == 0 and state(app) == "asleep"

    # Auto: Gemini answers at once, and the chat says the self-hosted model is waking (estimate: none measured).
    reply = chat(url, "a1", AUTO, session_hash=session).reply
    assert reply == (
        "You said: a1 (3 messages in context)\n\n"
        f"ℹ️ Answered by {GEMINI_LABEL} because {FAKE_LABEL} is waking up (asked 0 s ago; {ESTIMATE})"
    )
    assert metric(app, "chat_self_hosted_wanted_total") == wanted + 1
    assert state(app) == "waking"
    wait_until(lambda: scaler.happened("demand") == 1, 30, "the autoscaler to see the demand")

    # The self-hosted model chosen directly while it wakes: said so, Gemini offered, nothing stored for it.
    reply = chat(url, "d1", FAKE_LABEL, session_hash=session).reply
    assert reply.startswith(f"⚠️ {FAKE_LABEL} is waking up (asked "), reply
    assert reply.endswith(
        f"; {ESTIMATE}). {GEMINI_LABEL} can answer meanwhile: "
        f"choose {GEMINI_LABEL} (or Auto) and send it again (Retry)."
    ), reply
    assert metric(app, "chat_self_hosted_wanted_total") == wanted + 2
    assert not scaler.up and state(app) == "waking"

    # Woken: the chat sees it ready, records how long it took, and the next message goes to it.
    scaler.release(once=True)  # then held again: it stays up however long the next steps take here
    wait_until(lambda: scaler.up, 60, "the stand-in autoscaler to start the model server")
    wait_until(lambda: state(app) == "ready", NOTICED_S, "the chat to see the woken model server ready")
    assert metric(app, "chat_self_hosted_wake_seconds_count") == 1
    took = metric(app, "chat_self_hosted_wake_seconds_sum")
    assert 1.0 <= took <= NOTICED_S + 60  # at least the autoscaler's delay
    assert chat(url, "a2", AUTO, session_hash=session).reply == f"You said: a2\n\nℹ️ Answered by {FAKE_LABEL}"
    assert chat(url, "d2", FAKE_LABEL, session_hash=session).reply == "You said: d2"
    assert metric(app, "chat_self_hosted_wanted_total") == wanted + 4

    # Idle: scaled to zero again; Auto answers with Gemini and now shows the wake-up it measured.
    scaler.release()
    wait_until(lambda: scaler.happened("scaled down") == 1, IDLE_S + 30, "the autoscaler to scale to zero")
    wait_until(lambda: state(app) == "asleep", NOTICED_S, "the chat to see the model server asleep again")
    reply = chat(url, "a3", AUTO, session_hash=session).reply
    assert reply.endswith(
        f"ℹ️ Answered by {GEMINI_LABEL} because {FAKE_LABEL} is waking up (asked 0 s ago; "
        f"usually ready in about {duration(took)})"
    ), reply

    # What is stored: one reply per answered message, by the model that answered, nothing for d1, no doubles.
    rows = conversation_of(sqlite_path(app), session)
    assert [(role, content.split(" (")[0], model) for role, content, model, _ in rows] == [
        ("user", "g1", None),
        ("assistant", "You said: g1", GEMINI_LABEL),
        ("user", "a1", None),
        ("assistant", "You said: a1", GEMINI_LABEL),
        ("user", "a2", None),
        ("assistant", "You said: a2", FAKE_LABEL),
        ("user", "d2", None),
        ("assistant", "You said: d2", FAKE_LABEL),
        ("user", "a3", None),
        ("assistant", "You said: a3", GEMINI_LABEL),
    ]
    assert len(gemini.generate_requests()) == 3  # g1, a1, a3: Gemini never answered a turn the model server did
