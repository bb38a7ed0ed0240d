"""Everything this project knows about Gradio's private names and route shapes, in one place.

Gradio 6.31 (pinned in pyproject.toml) exposes no public API for these, so each name here was read in its source
(`gradio/routes.py`, `gradio/blocks.py`). `tests/security/test_gradio_compat.py` fails when an upgrade renames
one of them, adds a route, or changes how sign-in reads its form: fix this module, nothing else.
"""

from __future__ import annotations

import collections
import enum
import importlib.util
import os
import re
import sys
import typing
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import gradio as gr
from starlette.routing import Mount

PINNED = "6.31.0"
API = "/gradio_api"
# Read by `gradio.analytics.analytics_enabled()` each time it reports (a Blocks built, an app launched), not at
# import: a private chat must not report usage to anyone.
ANALYTICS_VARIABLE = "GRADIO_ANALYTICS_ENABLED"


def no_analytics() -> None:
    os.environ.setdefault(ANALYTICS_VARIABLE, "False")


# At import, not in the entry point only: every module that builds a Blocks (ui.py, tests, bench) imports this one.
no_analytics()


class Access(enum.Enum):
    """Who may call a route, and how the Gradio session or event it names is bound to the caller."""

    OPEN = "anyone, even without a caller in password mode (the page shell, which is the sign-in page then)"
    STATIC = "anyone, like OPEN, and the same for everyone: the only answers that may be cached"
    CALLER = "a caller, and nothing it names needs binding"
    SESSION_IN_QUERY = "a caller; the session (or upload) id in the query string is bound to it"
    SESSION_IN_PATH = "a caller; the session hash in the path is bound to it"
    SESSION_IN_BODY = "a caller; `session_hash` (and `event_id`) in the JSON body are bound to it"
    EVENT_IN_PATH = "a caller; the event id in the path must already be one of the caller's"
    NEW_EVENT = "a caller; the event id Gradio answers becomes the caller's"
    UPLOAD = "a caller within its upload limits; every file judged by its content"
    FILE = "a caller, for a file it uploaded itself"
    LOGIN = "anyone, within the sign-in limits (password mode only)"
    DENY = "nobody: not used by the page or gradio_client, or it leaks another session"


# Every route of the mounted Gradio 6.31 app (methods, path as Gradio declares it) with its rule. A route missing
# here is refused at run time and fails the route test.
_GRADIO_ROUTES: list[tuple[str, str, Access]] = [
    # The page shell and static files.
    ("GET HEAD", "/", Access.OPEN),  # a `deep_link` query is refused separately: it loads another session's state
    ("GET", "/svelte/{path:path}", Access.STATIC),
    ("GET", "/static/{path:path}", Access.STATIC),
    ("GET", "/assets/{path:path}", Access.STATIC),
    ("GET", "/favicon.ico", Access.STATIC),
    ("GET", "/theme.css", Access.STATIC),
    ("GET", f"{API}/theme.css", Access.STATIC),
    ("GET", "/robots.txt", Access.STATIC),
    ("GET", "/pwa_icon", Access.STATIC),
    ("GET", "/pwa_icon/{size}", Access.STATIC),
    ("GET", "/manifest.json", Access.STATIC),
    # Sign-in.
    ("POST", "/login", Access.LOGIN),
    ("POST", "/login/", Access.LOGIN),
    ("GET", "/logout", Access.OPEN),
    # What the page and gradio_client read and call.
    ("GET", "/config", Access.CALLER),
    ("GET", "/config/", Access.CALLER),
    ("GET", f"{API}/info", Access.CALLER),
    ("GET", f"{API}/info/", Access.CALLER),
    ("GET", f"{API}/queue/status", Access.CALLER),
    # The page's way back after its event stream broke: it shows "Connection Lost", asks this every 2 s and
    # reloads itself once the server answers. The id (random per process) is in /config already.
    ("GET", f"{API}/app_id", Access.CALLER),
    ("GET", f"{API}/app_id/", Access.CALLER),
    ("POST", f"{API}/reset", Access.CALLER),  # a no-op in Gradio 6.31
    ("POST", f"{API}/reset/", Access.CALLER),
    ("POST", f"{API}/queue/join", Access.SESSION_IN_BODY),
    ("POST", f"{API}/cancel", Access.SESSION_IN_BODY),
    ("POST", f"{API}/run/{{api_name}}", Access.SESSION_IN_BODY),
    ("POST", f"{API}/run/{{api_name}}/", Access.SESSION_IN_BODY),
    ("POST", f"{API}/api/{{api_name}}", Access.SESSION_IN_BODY),
    ("POST", f"{API}/api/{{api_name}}/", Access.SESSION_IN_BODY),
    ("POST", f"{API}/call/{{api_name}}", Access.SESSION_IN_BODY),
    ("POST", f"{API}/call/{{api_name}}/", Access.SESSION_IN_BODY),
    # v2 takes named parameters: any `session_hash` key is a parameter, the event runs in a session of its own id.
    ("POST", f"{API}/call/v2/{{api_name}}", Access.NEW_EVENT),
    ("POST", f"{API}/call/v2/{{api_name}}/", Access.NEW_EVENT),
    # Gradio takes an unknown event id here as a session hash: only the caller's own ids pass.
    ("GET", f"{API}/call/{{api_name}}/{{event_id}}", Access.EVENT_IN_PATH),
    ("GET", f"{API}/call/v2/{{api_name}}/{{event_id}}", Access.EVENT_IN_PATH),
    ("GET", f"{API}/queue/data", Access.SESSION_IN_QUERY),
    ("GET", f"{API}/heartbeat/{{session_hash}}", Access.SESSION_IN_PATH),
    ("POST", f"{API}/upload", Access.UPLOAD),
    ("GET", f"{API}/upload_progress", Access.SESSION_IN_QUERY),
    ("GET HEAD", f"{API}/file={{path_or_url:path}}", Access.FILE),
    ("GET", f"{API}/file/{{path:path}}", Access.FILE),
    # Refused: another session's state, a fetcher of URLs, and features this chat does not use.
    ("GET", f"{API}/deep_link", Access.DENY),
    ("GET HEAD", f"{API}/proxy={{url_path:path}}", Access.DENY),
    ("POST", f"{API}/component_server", Access.DENY),  # no component of this chat has server functions
    ("POST", f"{API}/component_server/", Access.DENY),
    ("GET", f"{API}/user", Access.DENY),
    ("GET", f"{API}/user/", Access.DENY),
    ("GET", f"{API}/login_check", Access.DENY),
    ("GET", f"{API}/login_check/", Access.DENY),
    ("GET", f"{API}/token", Access.DENY),
    ("GET", f"{API}/token/", Access.DENY),
    ("GET", f"{API}/dev/reload", Access.DENY),
    ("GET", f"{API}/runs", Access.DENY),
    ("GET", f"{API}/runs/", Access.DENY),
    ("GET", f"{API}/openapi.json", Access.DENY),
    ("GET HEAD", "/openapi.json", Access.DENY),
    ("GET", f"{API}/custom_component/{{id}}/{{environment}}/{{type}}/{{file_name}}", Access.DENY),
    ("POST", f"{API}/stream/{{event_id}}", Access.DENY),
    ("POST", f"{API}/stream/{{event_id}}/close", Access.DENY),
    ("GET", f"{API}/stream/{{session_hash}}/{{run}}/{{component_id}}/playlist.m3u8", Access.DENY),
    ("GET", f"{API}/stream/{{session_hash}}/{{run}}/{{component_id}}/{{segment_id}}.{{ext}}", Access.DENY),
    ("GET", f"{API}/stream/{{session_hash}}/{{run}}/{{component_id}}/playlist-file", Access.DENY),
    ("GET", f"{API}/startup-events", Access.DENY),
    ("POST", f"{API}/process_recording", Access.DENY),
    ("POST", f"{API}/vibe-edit", Access.DENY),
    ("POST", f"{API}/vibe-edit/", Access.DENY),
    ("POST", f"{API}/undo-vibe-edit", Access.DENY),
    ("POST", f"{API}/undo-vibe-edit/", Access.DENY),
    ("GET POST", f"{API}/vibe-code", Access.DENY),
    ("GET POST", f"{API}/vibe-code/", Access.DENY),
    ("POST", f"{API}/vibe-starter-queries", Access.DENY),
    ("POST", f"{API}/vibe-starter-queries/", Access.DENY),
    ("GET", "/monitoring", Access.DENY),
    ("GET", "/monitoring/summary", Access.DENY),
    ("GET", "/monitoring/{key}", Access.DENY),
]


# The id each SESSION_IN_QUERY route names in its query string.
QUERY_IDS = {f"{API}/queue/data": "session_hash", f"{API}/upload_progress": "upload_id"}
# Routes that answer `{"event_id": …}`: Gradio takes that id for a session hash where it knows no event.
EVENT_ANSWERS = frozenset(
    {f"{API}/queue/join", f"{API}/call/{{api_name}}", f"{API}/call/{{api_name}}/"}
    | {f"{API}/call/v2/{{api_name}}", f"{API}/call/v2/{{api_name}}/"}
)
# Query parameters that load another session's state into a page (`/gradio_api/deep_link` writes it).
DEEP_LINK_QUERY = "deep_link"


def gradio_routes() -> dict[tuple[str, str], Access]:
    """(method, declared path) → rule, for every route of the pinned Gradio app."""
    return {(m, path): access for methods, path, access in _GRADIO_ROUTES for m in methods.split()}


def route_pattern(path: str) -> re.Pattern[str]:
    """A declared path (`/x/{name}`, `/x/{name:path}`, `/file={p:path}`) as the regex Starlette matches it with."""
    out, pos = "", 0
    for match in re.finditer(r"{(\w+)(:path)?}", path):
        out += re.escape(path[pos : match.start()])
        out += f"(?P<{match[1]}>.*)" if match[2] else f"(?P<{match[1]}>[^/]+)"
        pos = match.end()
    return re.compile(f"^{out}{re.escape(path[pos:])}$", re.DOTALL)


def declared_routes(app: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route an ASGI app serves, into mounts and FastAPI's included routers."""
    for route in getattr(app, "routes", None) or []:
        if isinstance(route, Mount):
            yield from declared_routes(route.app, prefix + route.path)
        elif hasattr(route, "effective_candidates"):  # FastAPI ≥ 0.16x keeps an included router as one route
            yield from declared_routes(_Routes(route.effective_candidates()), prefix)
        else:
            for method in sorted(getattr(route, "methods", None) or {"WEBSOCKET"}):
                yield method, prefix + route.path


class _Routes:
    def __init__(self, routes: list[Any]) -> None:
        self.routes = routes


# -- the mounted Gradio app's private state -----------------------------------------------------------------


def gradio_app(app: Any) -> Any | None:
    """The Gradio `App` mounted inside `app` (by `gr.mount_gradio_app`)."""
    return next((r.app for r in app.routes if isinstance(r, Mount)), None)


def session_cookie_names(gradio: Any) -> tuple[str, str]:
    """Gradio's sign-in cookies: the `Secure` one and the one for plain HTTP, holding the same token."""
    return f"access-token-{gradio.cookie_id}", f"access-token-unsecure-{gradio.cookie_id}"


def signed_in_user(gradio: Any, cookies: Mapping[str, str]) -> str | None:
    """The user name Gradio's password sign-in issued the request's cookie to (its in-memory token map)."""
    secure, plain = session_cookie_names(gradio)
    token = cookies.get(secure) or cookies.get(plain)
    return gradio.tokens.get(token) if token else None


def share_sign_ins(gradio: Any, cookie_id: str | None, tokens: MutableMapping[str, str] | None) -> None:
    """Replace the two per-process parts of Gradio's password sign-in (set by `App.__init__` and
    `App.configure_app`, so only after mounting): the cookie-name suffix and the token → user map."""
    if cookie_id is not None:
        gradio.cookie_id = cookie_id
    if tokens is not None:
        gradio.tokens = tokens


def login_name(form_value: str) -> str:
    """The name Gradio's `/login` compares with its users: the form's `username`, stripped, compared exactly."""
    return form_value.strip()


LOGIN_FIELDS = ("username", "password")  # read from the form (multipart or URL-encoded) by OAuth2PasswordRequestForm


def upload_folder() -> str:
    """The folder Gradio writes uploads to and accepts event files from (`GRADIO_TEMP_DIR`, else its default)."""
    from gradio.utils import get_upload_folder

    return get_upload_folder()


def wrap_upload(wrapper: Callable[[Any], Any]) -> None:
    """Wrap the function Gradio's upload route writes files with (`upload_fn` of `gradio.route_utils`, which the
    route looks up in `gradio.routes` at each request); once per process."""
    import gradio.routes

    if not getattr(gradio.routes.upload_fn, "wrapped", False):
        wrapped = wrapper(gradio.routes.upload_fn)
        wrapped.wrapped = True
        gradio.routes.upload_fn = wrapped


def set_thread_count(demo: gr.Blocks, threads: int) -> None:
    """What `launch()` sets and a mounted app must set by hand: the worker threads of sync handlers."""
    demo.max_threads = threads
    demo._queue.max_thread_count = threads


def skip_monitoring_summary(demo: gr.Blocks) -> None:
    """Gradio's queue keeps a record of each of its last 10,000 events and, after every event, summarizes all of
    them with pandas (`Queue.compute_analytics_summary`: a DataFrame grouped by function) for its monitoring
    dashboard. That took 1.6 ms of CPU at 100 records and 11.6 ms at 10,000, mostly holding the GIL: every event
    of a process got slower with its age, and replies ending together stalled the streams still running. The
    dashboard is off here (`enable_monitoring=False`, its routes refused), so nothing reads the summary: the
    queue keeps one record and never summarizes. Call it after `demo.queue()`, which makes the queue."""
    queue = demo._queue
    queue.ANALYTICS_MAX_EVENTS = 1
    queue.compute_analytics_summary = lambda records: queue.cached_event_analytics_summary


def skip_matplotlib_probe() -> None:
    # Gradio runs `import matplotlib` around every event, streamed updates included, to switch its backend.
    # When matplotlib is not installed (it is not a dependency here) each attempt searches all of sys.path
    # again, because failed imports are not cached: ~10% of the event loop at 32 streams. A None entry in
    # sys.modules makes that import fail at once, which is exactly what Gradio expects.
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]


class _NoBlocks:
    """A Blocks seen with no blocks: `SessionState.__init__` then configures none of them up front."""

    def __init__(self, blocks: Any) -> None:
        self._blocks = blocks

    @property
    def blocks(self) -> dict[int, Any]:
        return {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._blocks, name)


def skip_session_config() -> None:
    """Gradio keeps, for each session, the configuration of every component with that session's values
    (`SessionState.config_values`) for one reader: the `deep_link` route, which the Guard refuses. Building it
    up front (every component of the page) took ~1/3 of the chat's CPU when 100 API clients started at once,
    and filling it in as events ran still cost ~0.1 ms per input of every event (py-spy, README
    "Performance"). So a session here starts with none and events copy nothing into it."""
    from gradio.state_holder import SessionState

    original = SessionState.__init__
    if getattr(original, "no_config", False):
        return

    def init(self: Any, blocks: Any) -> None:
        original(self, _NoBlocks(blocks))

    init.no_config = True  # type: ignore[attr-defined]
    SessionState.__init__ = init  # type: ignore[method-assign]
    SessionState._update_value_in_config = _keep_no_config  # type: ignore[method-assign]


def _keep_no_config(self: Any, key: int, value: Any) -> None:
    """`SessionState._update_value_in_config`, kept for deep links only: nothing to keep."""


def forget_abandoned_events() -> None:
    """When a session's event stream disconnects mid-reply, Gradio (`sse_stream` in routes.py) marks the
    session's running events dead (`Queue.clean_events`) but keeps their ids in `pending_event_ids_session`,
    and a stream closes only once that set is empty. Their completion is never sent (dead events send nothing),
    so every later stream of that session (a `/call` client calling again, a `gradio_client` that lost its
    connection) stayed open for good after its own reply. Here the dead events' ids go with them."""
    from gradio.queueing import Queue

    original = Queue.clean_events
    if getattr(original, "forgets_abandoned", False):
        return

    async def clean_events(self: Any, *, session_hash: str | None = None, event_id: str | None = None) -> None:
        await original(self, session_hash=session_hash, event_id=event_id)
        pending = self.pending_event_ids_session.get(session_hash) if session_hash is not None else None
        if not pending:
            return
        pending -= {
            event._id
            for events in self.active_jobs
            if events
            for event in events
            if event.session_hash == session_hash and not event.alive
        }
        if not pending:
            self.pending_event_ids_session.pop(session_hash, None)

    clean_events.forgets_abandoned = True  # type: ignore[attr-defined]
    Queue.clean_events = clean_events  # type: ignore[method-assign]


def forget_call_sessions() -> None:
    """A `/call/<api>` request (Gradio's REST form: curl, the bench) names no session: Gradio makes one for the
    call, keyed by the event's own id, and keeps three things of it after its answer was read:
    - its session (a copy of the app's component and event tables, and the call's `gr.State`), until 10,000
      newer sessions push it out: ~25 KB each, and every full garbage collection walked them all (over 1,200
      calls the longest pause grew from 14 to 93 ms, a stall for every stream in flight);
    - its message queue, in a table of 2,000 that drops the OLDEST entry for each new one, in use or not: 2,000
      calls while a page's reply is running pushed that page's queue out, and the reply ended in an error;
    - its entry among the sessions' pending event ids (an empty set, never removed), which every `/call` event
      stream that starts after its event walks in full: a cost that grew with every call the process served.
    No later request can use any of them (each call gets a new id), so here the session goes once its event has
    ended, and the queue and the entry once the call's stream has read the answer (README "Performance").
    Sessions a client names itself (the page, `gradio_client`) are kept as before.
    """
    from gradio.queueing import Queue

    original = Queue.process_events
    if getattr(original, "forgets_call_sessions", False):
        return

    async def process_events(self: Any, events: list[Any], *args: Any, **kwargs: Any) -> None:
        try:
            await original(self, events, *args, **kwargs)
        finally:
            calls = [event._id for event in events if event.session_hash == event._id]  # sessions made for one call
            holder = getattr(self.server_app, "state_holder", None)
            if holder is not None:
                with holder.lock:
                    for session_hash in calls:
                        holder.session_data.pop(session_hash, None)
                        holder.time_last_used.pop(session_hash, None)
            _forget_read_calls(self, calls)

    process_events.forgets_call_sessions = True  # type: ignore[attr-defined]
    Queue.process_events = process_events  # type: ignore[method-assign]


def _forget_read_calls(queue: Any, ended: list[str]) -> None:
    """Drop the message queue and pending-id entry of ended calls whose answer was read (their set of pending
    ids is empty: the stream removes an id as it sends that event's completion) or can no longer be (their
    queue was pushed out). Calls not read yet wait their turn: each ended call looks at two waiting ones, so
    the work per event stays constant and the waiting line shrinks as answers are read."""
    waiting: collections.deque[str] = queue.__dict__.setdefault("_ended_calls", collections.deque())
    waiting.extend(ended)
    for _ in range(min(len(waiting), 2 * len(ended))):
        session_hash = waiting.popleft()
        if queue.pending_event_ids_session.get(session_hash) and session_hash in queue.pending_messages_per_session:
            waiting.append(session_hash)  # its answer is not read yet
            continue
        queue.pending_event_ids_session.pop(session_hash, None)
        queue.pending_messages_per_session.pop(session_hash, None)


def resolve_type_hints(demo: gr.Blocks) -> None:
    """Gradio looks for a `gr.Request` parameter in every event (`helpers.special_args` →
    `typing.get_type_hints`). With `from __future__ import annotations` the hints are strings, compiled and
    evaluated again on each event: ~130 µs of the event loop's thread per event for `/chat`. Evaluated once
    here, the same lookup takes ~15 µs and finds the same types."""
    for block_fn in demo.fns.values():
        function = getattr(block_fn.fn, "__func__", block_fn.fn)  # a bound method's annotations are its function's
        annotations = getattr(function, "__annotations__", None)
        if not annotations or not any(isinstance(hint, str) for hint in annotations.values()):
            continue
        function.__annotations__ = typing.get_type_hints(function)
