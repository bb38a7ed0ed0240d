"""The self-hosted server's wake state (chatapp.models.waking): asleep, waking and ready, what the status list and
the messages say in each, and how long a wake-up took (measured, shown as the recent median).

The self-hosted model is the real OpenAI-compatible client: against a port nobody listens on (the Service of a
deployment at zero replicas) or the vLLM-shaped fake (awake). Time is a test clock, so "asked 30 s ago" is exact.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from chatapp.chat import ChatSession
from chatapp.models import AutoModel, OpenAICompatModel
from chatapp.models.base import GenerationParams, ReplyStats
from chatapp.models.waking import DOCUMENTED_WAKE_S, WakeTracker, Waking, WakingModel
from chatapp.status import ModelStatus
from harness.support import free_port
from tests.chat.test_chat_service import ScriptedModel, run, service

ESTIMATE = "usually ready in about 12 min, an estimate until one is measured here"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def asleep_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def gemma(url: str, clock: Clock, meanwhile: str | None = "Gemini") -> WakingModel:
    inner = OpenAICompatModel("Gemma", url, "fake-model", connect_timeout_s=2.0, retry_budget_s=0.0)
    return WakingModel(inner, WakeTracker("Gemma", clock=clock), meanwhile)


def wake_histogram() -> tuple[float, float]:
    count = REGISTRY.get_sample_value("chat_self_hosted_wake_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("chat_self_hosted_wake_seconds_sum") or 0.0
    return count, total


def shown_state() -> str:
    for state in ("unknown", "ready", "asleep", "waking", "failing"):
        if REGISTRY.get_sample_value("chat_self_hosted_state", {"chat_self_hosted_state": state}) == 1.0:
            return state
    raise AssertionError("chat_self_hosted_state is not on /metrics")


def test_asleep_then_waking_then_ready_in_the_status_list_with_the_wake_up_measured():
    clock = Clock()
    model = gemma(asleep_url(), clock)
    status = ModelStatus({"Gemma": model})

    status.refresh()
    assert status.markdown() == (
        "- 💤 **Gemma**: asleep (not reachable (connection refused)); a message to it or to Auto wakes it"
    )
    assert shown_state() == "asleep"

    model.waking.wanted()  # a turn wanted it at t=1000
    clock.now += 30
    status.refresh()  # still down: waking, not asleep
    assert status.markdown() == f"- ⏳ **Gemma**: waking up (asked 30 s ago; {ESTIMATE})"
    assert shown_state() == "waking"

    before = wake_histogram()
    clock.now += 270
    model.waking.saw_check(None)  # the first healthy check, 300 s after the turn that wanted it
    assert wake_histogram() == (before[0] + 1, before[1] + 300.0)
    assert model.waking.usual() == (300.0, True)
    assert shown_state() == "ready"


def test_ready_is_said_as_ready_and_a_healthy_server_was_no_wake_up(fake_openai):
    clock = Clock()
    model = gemma(fake_openai.base_url, clock)
    before = wake_histogram()
    status = ModelStatus({"Gemma": model, "Gemini": ScriptedModel("Gemini")})
    status.refresh()
    assert status.markdown() == "- 🟢 **Gemma**: ready\n- 🟢 **Gemini**"
    assert wake_histogram() == before  # up from the start: nothing was waited for


def test_the_usual_time_is_the_recent_median_and_a_late_wake_up_says_so():
    clock = Clock()
    tracker = WakeTracker("Gemma", clock=clock)
    assert tracker.usual() == (DOCUMENTED_WAKE_S, False)
    for took in (60, 600, 120):
        tracker.saw_down("not reachable (connection refused)")
        tracker.wanted()
        clock.now += took
        tracker.saw_ready()
    assert tracker.usual() == (120.0, True)
    tracker.saw_down("not reachable (connection refused)")
    tracker.wanted()
    clock.now += 100
    assert tracker.because() == "Gemma is waking up (asked 100 s ago; usually ready in about 2 min)"
    clock.now += 200  # 300 s: more than twice the usual
    assert tracker.because() == "Gemma is waking up (asked 5 min ago, longer than usual; usually ready in about 2 min)"


def test_only_the_first_turn_while_down_starts_the_clock():
    clock = Clock()
    tracker = WakeTracker("Gemma", clock=clock)
    tracker.saw_down("still starting (HTTP 503)")
    tracker.wanted()
    clock.now += 50
    tracker.wanted()  # a second turn does not restart it
    assert tracker.because().startswith("Gemma is waking up (asked 50 s ago;")


def test_a_server_that_answers_but_errs_is_not_asleep(fake_openai):
    tracker = WakeTracker("Gemma")
    tracker.saw_check("HTTP 500: boom")
    assert tracker.state == "failing" and tracker.status_line() is None


def test_chosen_directly_while_asleep_it_says_waking_and_offers_gemini():
    clock = Clock()
    model = gemma(asleep_url(), clock)
    gemini = ScriptedModel("Gemini", chunks=("Sure",))
    svc = service(model, gemini, update_interval_s=0)
    session = ChatSession(owner="browser:1")

    last = run(svc, session, "hi", "Gemma")[-1]
    assert last.text == "" and last.notice == (
        f"Gemma is waking up (asked 0 s ago; {ESTIMATE}). Gemini can answer meanwhile: choose Gemini (or Auto) "
        "and send it again (Retry)."
    )
    assert model.waking.state == "waking" and session.turns == 0  # nothing stored, nothing half-answered
    assert run(svc, session, "hi", "Gemini")[-1].text == "Sure"  # the offer works: Gemini answers it


def test_without_gemini_the_offer_is_to_send_again_later():
    with pytest.raises(Waking, match=r"waking up .*\. Send it again once it is ready\.$"):
        list(gemma(asleep_url(), Clock(), meanwhile=None).stream([], GenerationParams(), ReplyStats()))


def test_auto_answers_with_gemini_at_once_while_waking_and_goes_back_once_ready(fake_openai):
    clock = Clock()
    model = gemma(fake_openai.base_url, clock)
    auto = AutoModel("Auto", model, ScriptedModel("Gemini", chunks=("Sure",)))
    svc = service(auto, update_interval_s=0)
    session = ChatSession(owner="browser:2")
    model.waking.saw_down("not reachable (connection refused)")  # the status check found it at zero

    last = run(svc, session, "one", "Auto")[-1]
    assert (last.answered_by, last.because) == ("Gemini", f"Gemma is waking up (asked 0 s ago; {ESTIMATE})")
    assert fake_openai.chat_requests() == []  # at once: no request to a server known to be down
    assert model.waking.state == "waking"  # and that turn started the wake-up

    clock.now += 90
    model.waking.saw_check(None)  # the status check sees it ready
    last = run(svc, session, "two", "Auto")[-1]
    assert (last.answered_by, last.text) == ("Gemma", "You said: two")
    assert model.waking.usual() == (90.0, True)


def test_auto_that_finds_it_gone_answers_with_gemini_and_starts_the_wake_up():
    clock = Clock()
    model = gemma(asleep_url(), clock)
    model.waking.saw_ready()  # it was up; KEDA scaled it to zero since the last check
    auto = AutoModel("Auto", model, ScriptedModel("Gemini", chunks=("Sure",)))
    last = run(service(auto, update_interval_s=0), ChatSession(owner="browser:3"), "hi", "Auto")[-1]
    assert (last.text, last.answered_by) == ("Sure", "Gemini")
    assert last.because == f"Gemma is waking up (asked 0 s ago; {ESTIMATE})"
    assert model.waking.state == "waking"


def test_a_server_that_wakes_up_serving_another_model_is_failing_not_waking_for_ever():
    tracker = WakeTracker("Gemma")
    tracker.saw_down("not reachable (connection refused)")
    tracker.wanted()
    tracker.saw_check("retired or unknown model id x: set SELF_HOSTED_MODEL (gemmaModel) (the server serves y)")
    assert tracker.state == "failing" and tracker.status_line() is None
    assert tracker.usual() == (DOCUMENTED_WAKE_S, False)  # not a wake-up to measure


def test_a_failed_request_names_the_reason_as_a_status_check_would():
    model = gemma(asleep_url(), Clock())
    with pytest.raises(Waking):
        list(model.stream([], GenerationParams(), ReplyStats()))
    assert model.waking.reason == "not reachable (connection refused)"
