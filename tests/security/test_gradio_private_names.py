"""Each private name of Gradio that `chatapp.gradio_compat` touches, checked in the installed Gradio: it exists
and has the shape the module assumes. An upgrade that renames or reshapes one fails here with the name in the
message (tests/security/test_gradio_compat.py checks the routes and the live sign-in)."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from fastapi.security import OAuth2PasswordRequestForm
from gradio import analytics, queueing, routes, state_holder, utils

from chatapp import gradio_compat


def test_analytics_are_read_from_the_variable_at_call_time(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(gradio_compat.ANALYTICS_VARIABLE, "True")
    assert analytics.analytics_enabled() is True, f"{gradio_compat.ANALYTICS_VARIABLE} is no longer read"
    monkeypatch.setenv(gradio_compat.ANALYTICS_VARIABLE, "False")
    assert analytics.analytics_enabled() is False


def test_only_gradio_compat_turns_analytics_off_and_the_shared_defaults_pull_nothing():
    script = (
        "import os, sys\n"
        "import chatapp.defaults\n"
        f"assert {gradio_compat.ANALYTICS_VARIABLE!r} not in os.environ, 'importing chatapp set a variable'\n"
        "assert 'gradio' not in sys.modules and 'pydantic' not in sys.modules, 'chatapp.defaults pulled a library'\n"
        "import chatapp.gradio_compat\n"
        f"assert os.environ[{gradio_compat.ANALYTICS_VARIABLE!r}] == 'False'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != gradio_compat.ANALYTICS_VARIABLE}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_matplotlib_probe_takes_a_none_module_for_missing(monkeypatch: pytest.MonkeyPatch):
    # What `skip_matplotlib_probe` relies on: Gradio imports matplotlib around events and catches ImportError,
    # which a None entry in sys.modules raises at once.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with utils.MatplotlibBackendMananger():
        pass
    assert "ImportError" in inspect.getsource(utils.MatplotlibBackendMananger.__enter__)


def test_the_queue_has_the_thread_count_set_thread_count_sets():
    demo = gr.Blocks()
    demo.queue()
    assert isinstance(demo._queue, queueing.Queue), "Blocks._queue is gone"
    assert hasattr(demo._queue, "max_thread_count"), "Queue.max_thread_count is gone"
    assert hasattr(demo, "max_threads"), "Blocks.max_threads is gone"


def test_the_queue_summarizes_events_where_skip_monitoring_summary_stops_it_for_the_monitoring_routes_alone():
    # What skip_monitoring_summary relies on: the queue records each event up to ANALYTICS_MAX_EVENTS (set per
    # queue in __init__) and summarizes through its own attribute `compute_analytics_summary` as events end;
    # the summary and the records are read by the monitoring routes alone, which the Guard refuses.
    assert "len(self.event_analytics) > self.ANALYTICS_MAX_EVENTS" in inspect.getsource(queueing.Queue.push)
    # Read from Gradio's file: `forget_call_sessions` may already have wrapped process_events in this process.
    queue_source = inspect.getsource(queueing)
    process_events = queue_source[queue_source.index("    async def process_events(") :].split("\n    async def ")[0]
    assert process_events.count("self.compute_analytics_summary,") == 2, "events are summarized otherwise"
    package = Path(gr.__file__).parent
    texts = {p.name: p.read_text() for p in package.rglob("*.py")}
    readers = {
        name: t.count("cached_event_analytics_summary") + t.count(".event_analytics") for name, t in texts.items()
    }
    assert {name: n for name, n in readers.items() if n and name != "queueing.py"} == {"routes.py": 2}
    routes_source = inspect.getsource(routes.App.create_app)
    for route in ("/monitoring/summary", "/monitoring/{key}"):
        assert gradio_compat.gradio_routes()[("GET", route)] is gradio_compat.Access.DENY
        assert f'@app.get("{route}"' in routes_source
    demo = gr.Blocks()
    demo.queue()
    gradio_compat.skip_monitoring_summary(demo)
    assert demo._queue.ANALYTICS_MAX_EVENTS == 1


def test_password_sign_in_keeps_its_token_map_and_cookie_names_where_gradio_compat_reads_them():
    app = routes.App()
    assert isinstance(app.cookie_id, str) and app.cookie_id, "App.cookie_id is gone"
    assert isinstance(app.tokens, dict), "App.tokens is no longer the token → user map"
    source = inspect.getsource(routes)
    secure, plain = gradio_compat.session_cookie_names(SimpleNamespace(cookie_id="{app.cookie_id}"))
    assert f'f"{secure}"' in source and f'f"{plain}"' in source, "Gradio's sign-in cookies are named otherwise"
    assert "form_data.username.strip()" in source, "Gradio's /login reads the user name otherwise (login_name)"
    fields = inspect.signature(OAuth2PasswordRequestForm.__init__).parameters
    assert set(gradio_compat.LOGIN_FIELDS) <= set(fields), "the sign-in form's fields are named otherwise"


def test_a_session_state_is_built_from_blocks_and_its_config_is_read_by_deep_links_alone():
    # Read from Gradio's files: `skip_session_config` may already have replaced methods in this process.
    source = inspect.getsource(state_holder.SessionState)
    assert re.search(r"def __init__\(self, blocks(: \S+)?\):", source), "SessionState.__init__ takes other arguments"
    assert "blocks.blocks" in source, "SessionState no longer configures the page's blocks (skip_session_config)"
    assert re.search(r"def _update_value_in_config\(self, key: int, value: Any\)", source)
    # What a session keeps is read through its `components`, by the deep_link route alone (refused here).
    package = Path(gr.__file__).parent
    sources = {str(p.relative_to(package)): p.read_text() for p in package.rglob("*.py")}
    elsewhere = [name for name, text in sources.items() if name != "state_holder.py" and "config_values" in text]
    assert elsewhere == [], f"Gradio reads a session's configuration elsewhere: {elsewhere}"
    readers = [name for name, text in sources.items() if re.search(r"\]\.components\b", text)]
    route = inspect.getsource(routes.App.create_app)
    deep_link = route[route.index("def deep_link") :].split("\n        @", 1)[0]
    assert readers == ["routes.py"] and route.count("].components") == deep_link.count("].components") == 1


def test_handlers_get_the_caller_as_request_username():
    request = gr.Request(username="browser:x")
    assert request.username == "browser:x", "gr.Request.username is not the caller Gradio was given"
    assert "auth_dependency" in inspect.signature(gr.mount_gradio_app).parameters


def test_clean_events_forgets_the_running_events_it_marks_dead():
    # What forget_abandoned_events relies on: a disconnected stream calls `Queue.clean_events(session_hash=...)`,
    # which marks the session's running events (in `active_jobs`) dead (tests/app/test_client_leaves.py checks
    # that the next stream of the session then ends).
    source = inspect.getsource(routes.App.create_app)
    assert "clean_events(session_hash=session_hash)" in source, "routes no longer clean a disconnected session"
    gradio_compat.forget_abandoned_events()
    demo = gr.Blocks()
    demo.queue()
    queue = demo._queue
    left = SimpleNamespace(_id="left", session_hash="s1", alive=True)
    other = SimpleNamespace(_id="other", session_hash="s2", alive=True)
    queue.active_jobs = [[left], None, [other]]
    queue.pending_event_ids_session = {"s1": {"left"}, "s2": {"other"}}
    # In a thread of its own: earlier tests in the same process can leave an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, queue.clean_events(session_hash="s1")).result(timeout=30)
    assert left.alive is False and other.alive is True
    assert queue.pending_event_ids_session == {"s2": {"other"}}, "the dead event's id is still pending"


def test_ended_calls_are_forgotten_once_read_from_the_tables_routes_use():
    # What forget_call_sessions relies on: a call's event stream removes the event's id from its session's set as
    # it sends the completion (and finds a finished call's session by that set); messages wait in a table that
    # drops its oldest entry for each new one.
    source = inspect.getsource(routes.App.create_app)
    assert "].remove(message.event_id)" in source, "streams no longer mark an event's completion as sent"
    assert "for s, ids in queue.pending_event_ids_session.items()" in source, "calls find their session otherwise"
    demo = gr.Blocks()
    demo.queue()
    queue = demo._queue
    messages = queue.pending_messages_per_session
    assert isinstance(messages, utils.LRUCache) and messages.max_size == 2000
    messages.max_size = 3
    for session in ("pushed-out", "read", "unread", "named-session"):
        messages[session] = asyncio.Queue()
    assert list(messages) == ["read", "unread", "named-session"], "the table no longer drops its oldest entry"
    queue.pending_event_ids_session = {"read": set(), "unread": {"unread"}, "pushed-out": {"pushed-out"}}
    queue.pending_event_ids_session["named-session"] = set()
    gradio_compat._forget_read_calls(queue, ["read", "unread", "pushed-out"])
    assert queue.pending_event_ids_session == {"unread": {"unread"}, "named-session": set()}
    assert list(messages) == ["unread", "named-session"]
    queue.pending_event_ids_session["unread"].clear()  # its stream sent the answer
    gradio_compat._forget_read_calls(queue, [])
    assert "unread" in queue.pending_event_ids_session, "a call's entry went without a call ending"
    gradio_compat._forget_read_calls(queue, ["another"])
    assert queue.pending_event_ids_session == {"named-session": set()} and list(messages) == ["named-session"]
