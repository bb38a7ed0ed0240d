"""The chat's Prometheus metrics as ChatService records them, outcome by outcome (the served /metrics page is
tested against a running chat and llama.cpp in tests/integration/test_metrics.py)."""

import prometheus_client

from chatapp.chat import Ask, ChatSession
from chatapp.models.base import ModelUnavailable, StreamCut
from tests.chat.test_chat_service import ScriptedModel, run, service


def sample(name, **labels):
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_outcome_is_counted_under_its_model():
    ok, cut = ScriptedModel("m-ok"), ScriptedModel("m-cut", error=StreamCut("cut short"))
    down, empty = ScriptedModel("m-down", chunks=(), error=ModelUnavailable("down")), ScriptedModel("m-empty", ())
    svc = service(ok, cut, down, empty, update_interval_s=0)
    before = {
        m: sample("chat_turns_total", model=m, outcome=o)
        for m, o in [("m-ok", "ok"), ("m-cut", "cut"), ("m-down", "error"), ("m-empty", "empty")]
    }
    for label in ("m-ok", "m-cut", "m-down", "m-empty"):
        run(svc, ChatSession(owner="o"), "hi", label)
    assert sample("chat_turns_total", model="m-ok", outcome="ok") == before["m-ok"] + 1
    assert sample("chat_turns_total", model="m-cut", outcome="cut") == before["m-cut"] + 1
    assert sample("chat_turns_total", model="m-down", outcome="error") == before["m-down"] + 1
    assert sample("chat_turns_total", model="m-empty", outcome="empty") == before["m-empty"] + 1
    assert sample("chat_turns_total", model="m-empty", outcome="ok") == 0
    # Tokens only when the model reported them; no first token for a reply that never started.
    assert sample("chat_tokens_total", model="m-ok", direction="out") >= 3
    assert sample("chat_time_to_first_token_seconds_count", model="m-down") == 0
    assert sample("chat_reply_duration_seconds_count", model="m-down") >= 1


def test_a_stopped_stream_leaves_nothing_in_flight():
    slow = ScriptedModel("m-stop", chunks=("a",) * 50)
    svc = service(slow, update_interval_s=0)
    stream = svc.reply(ChatSession(owner="o"), Ask("hi", "m-stop"))
    next(stream)
    assert sample("chat_streams_in_flight", model="m-stop") == 1
    stream.close()  # the user pressed stop
    assert sample("chat_streams_in_flight", model="m-stop") == 0
    assert sample("chat_turns_total", model="m-stop", outcome="stopped") == 1
