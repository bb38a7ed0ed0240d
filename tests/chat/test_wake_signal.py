"""The wake signal of a self-hosted model scaled to zero (stack/gemma_scaling.py): the chat's /metrics counts
turns that wanted the self-hosted model, chosen directly or through Auto (also when Auto answered with Gemini
because the server is asleep), and never turns on Gemini chosen directly.

The self-hosted model is the real OpenAI-compatible client against a port nobody listens on (what the chat sees
while the model server is at zero); Gemini is a scripted stand-in (no network here)."""

import re
import socket

import prometheus_client

from chatapp.chat import ChatSession
from chatapp.models import AutoModel, OpenAICompatModel
from tests.chat.test_chat_service import ScriptedModel, run, service

COUNTER = "chat_self_hosted_wanted_total"


def metrics_page() -> str:
    """What the chat's /metrics serves (prometheus_client's exposition of the default registry)."""
    return prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()


def wanted() -> float:
    found = re.search(rf"^{COUNTER} (\S+)$", metrics_page(), re.MULTILINE)
    assert found, f"{COUNTER} is not on /metrics"
    return float(found.group(1))


def asleep_url() -> str:
    """A local port with nothing listening: connection refused at once, like a Service with no endpoints."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def models():
    url = asleep_url()
    gemma = OpenAICompatModel("Gemma", url, "google/gemma-4-31b-it", connect_timeout_s=2.0)
    gemini = ScriptedModel("Gemini", chunks=("Sure",))
    impatient = OpenAICompatModel("Gemma", url, "google/gemma-4-31b-it", connect_timeout_s=2.0, retry_budget_s=0.0)
    return gemma, gemini, AutoModel("Auto", impatient, gemini)


def test_gemma_and_auto_turns_count_gemini_turns_do_not():
    gemma, gemini, auto = models()
    svc = service(auto, gemma, gemini, update_interval_s=0)
    session = ChatSession(owner="browser:1")

    before = wanted()
    run(svc, session, "hi", "Gemini")
    assert wanted() == before  # Gemini chosen directly never wakes the GPU

    auto_updates = run(svc, session, "hi", "Auto")
    assert auto_updates[-1].answered_by == "Gemini"  # the server is asleep: Auto answered with Gemini ...
    assert wanted() == before + 1  # ... and the turn still counts as demand for the self-hosted model

    gemma_updates = run(svc, session, "hi", "Gemma")
    assert gemma_updates[-1].notice  # it failed (asleep), but it wanted the self-hosted model
    assert wanted() == before + 2


def test_auto_counts_even_while_it_skips_a_server_it_knows_is_down():
    _, gemini, auto = models()
    svc = service(auto, gemini, update_interval_s=0)
    session = ChatSession(owner="browser:2")
    run(svc, session, "first", "Auto")  # the refused connection makes Auto skip the server for a while
    before = wanted()
    updates = run(svc, session, "second", "Auto")
    assert updates[-1].answered_by == "Gemini"
    assert wanted() == before + 1
