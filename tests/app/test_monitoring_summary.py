"""Gradio's queue summarizes its last 10,000 events with pandas after every event, for a monitoring dashboard
this app never mounts (1.6 ms of CPU at 100 records, 11.6 ms at 10,000, mostly holding the GIL: every event got
slower with the process's age). Here the chat's queue, and the bench's bare Gradio floor alike, keep one record
and never summarize (`gradio_compat.skip_monitoring_summary`); what the dashboard would show stays refused.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from gradio import queueing

from chatapp import gradio_compat
from tests.app.helpers import wait_until
from tests.app.test_call_sessions import call_chat
from tests.security.conftest import CONTROLS
from tests.security.wire import fn_index, join


@pytest.fixture
def summaries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many events each pandas summary Gradio builds covers (a summary is `Queue._get_df` of the records)."""
    built: list[int] = []
    original = queueing.Queue._get_df

    def get_df(records: list[dict[str, Any]]) -> Any:
        built.append(len(records))
        return original(records)

    monkeypatch.setattr(queueing.Queue, "_get_df", staticmethod(get_df))
    return built


def test_the_chats_events_build_no_summary_and_keep_one_record(chat_in_process, summaries):
    url, gradio_app = chat_in_process
    queue = gradio_app.get_blocks()._queue
    http = requests.Session()
    for n in range(3):  # `/call` requests, and a page-style session's events (queue/join)
        assert call_chat(http, url, f"call {n}")[1] == f"You said: call {n}"
    session_hash = f"page{uuid.uuid4().hex[:12]}"
    index = fn_index(http, url, "chat")
    for message in ("first", "second"):
        result = join(http, url, index, [message, *CONTROLS, None], session_hash)
        assert result.kind == "complete", result
    # Gradio summarizes as an event's task ends, after its answer is sent.
    wait_until(lambda: not queue._asyncio_tasks, 10, "the events to end")
    assert queue.events_recorded >= 5, "the events did not go through Gradio's queue"
    assert summaries == [], f"Gradio summarized its events with pandas: {summaries} records"
    assert len(queue.event_analytics) <= 1, f"the queue kept {len(queue.event_analytics)} event records"
    status = http.get(f"{url}/gradio_api/monitoring/summary", timeout=10).status_code
    assert status in (403, 404), f"the monitoring summary answered {status}"


def test_the_bare_floor_skips_the_summary_as_the_chat_does(summaries):
    from bench.bare_gradio import build

    app = build("http://127.0.0.1:9/v1", "fake-model", 4)  # no request is sent: only the queue is read
    queue = gradio_compat.gradio_app(app).get_blocks()._queue
    record = {"time": 0.0, "status": "success", "process_time": 1.0, "function": "chat", "session_hash": "s"}
    queue.events_recorded = 10
    assert queue.compute_analytics_summary([record] * 3) == queue.cached_event_analytics_summary
    assert summaries == [], "the bare floor still summarizes its events"
    assert queue.ANALYTICS_MAX_EVENTS == 1
