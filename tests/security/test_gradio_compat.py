"""The pinned Gradio still has every private name and route `chatapp.gradio_compat` relies on, and the front door
has a rule for every route the mounted app serves: an upgrade that renames, adds or moves one fails here, loudly,
instead of opening a hole (a new route reached without a rule) or breaking sign-in quietly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatapp import gradio_compat
from chatapp.gradio_compat import Access, declared_routes, gradio_routes
from chatapp.route_rules import OWN_ROUTES
from chatapp.server import create_app
from chatapp.settings import load_settings

MODES = {"none": {}, "password": {"CHAT_AUTH_USERS": "ada:correct horse"}}


@pytest.fixture(scope="module", params=list(MODES))
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    folder = tmp_path_factory.mktemp(request.param)
    env = {"CHAT_AUTH": request.param, "CHAT_SQLITE_PATH": str(folder / "history.sqlite3"), **MODES[request.param]}
    yield create_app(load_settings(env))


def test_the_pinned_gradio_is_the_one_these_names_were_read_in():
    assert gr.__version__ == gradio_compat.PINNED, "read chatapp/gradio_compat.py against the new Gradio, then pin it"


def test_every_route_of_the_mounted_app_has_a_rule_and_every_rule_a_route(app):
    table = {**gradio_routes(), **OWN_ROUTES}
    served = set(declared_routes(app))
    assert len(served) > 60  # the walk reached into the mount and FastAPI's included routers
    unruled = sorted(r for r in served if r not in table and not (r[0] == "HEAD" and ("GET", r[1]) in table))
    assert unruled == [], f"routes without a rule in chatapp/gradio_compat.py: {unruled}"
    stale = sorted(r for r in table if r not in served)
    assert stale == [], f"rules for routes the app no longer serves: {stale}"


def test_a_route_a_gradio_upgrade_adds_is_refused(app):
    gradio_app = gradio_compat.gradio_app(app)
    assert gradio_app is not None

    @gradio_app.get("/gradio_api/brand-new")
    def brand_new() -> dict[str, str]:
        return {"leaked": "state"}

    answer = TestClient(app).get("/gradio_api/brand-new")
    assert answer.status_code == 404 and "leaked" not in answer.text


def test_private_names_still_exist():
    demo = gr.Blocks()
    demo.queue()
    gradio_compat.set_thread_count(demo, 77)
    assert demo._queue.max_thread_count == 77 and demo.max_threads == 77


def test_password_sign_in_cookies_and_name_are_as_gradio_compat_says(tmp_path: Path):
    env = {"CHAT_AUTH": "password", "CHAT_AUTH_USERS": "ada:correct horse", "CHAT_SQLITE_PATH": str(tmp_path / "h")}
    app = create_app(load_settings(env))
    gradio_app = gradio_compat.gradio_app(app)
    http = TestClient(app)
    # Gradio strips the name it is sent and compares it exactly (the limiter counts that same name).
    signed_in = http.post("/login", data={"username": "  ada ", "password": "correct horse"})
    assert signed_in.status_code == 200, signed_in.text
    secure, plain = gradio_compat.session_cookie_names(gradio_app)
    assert {secure, plain} <= set(signed_in.cookies.keys())
    assert gradio_compat.signed_in_user(gradio_app, {plain: signed_in.cookies[plain]}) == "ada"
    assert http.post("/login", data={"username": "Ada", "password": "correct horse"}).status_code == 400
    # Both the URL-encoded and the multipart form (what browsers send) are read by Gradio's handler.
    multipart = TestClient(app).post("/login", files={"username": (None, "ada"), "password": (None, "correct horse")})
    assert multipart.status_code == 200
    assert gradio_compat.LOGIN_FIELDS == ("username", "password")


def test_every_rule_names_an_access_the_guard_handles():
    assert {a for a in gradio_routes().values()} <= set(Access)


def test_a_session_keeps_no_configuration_of_the_page(app: FastAPI):
    """What lets 100 sessions start at once cheaply (`gradio_compat.skip_session_config`): Gradio's SessionState
    configures nothing up front (it did every component of the page), yet still knows the page, and an event's
    values are not copied into a configuration either. Deep links, its one reader, stay refused
    (tests/security/test_default_deny.py; that nothing else reads it: test_gradio_private_names.py)."""
    from gradio.state_holder import SessionState

    blocks = gradio_compat.gradio_app(app).get_blocks()
    session = SessionState(blocks)
    assert session.config_values == {}, "a new session configured every component of the page up front"
    assert session.blocks_config.blocks.keys() == blocks.default_config.blocks.keys()
    some_id = next(iter(blocks.blocks))
    session._update_value_in_config(some_id, "typed")
    assert session.config_values == {}, "an event's value was copied into the session's configuration"


def test_gradio_writes_uploads_through_the_wrapped_upload_fn_into_its_upload_folder(app: FastAPI, tmp_path: Path):
    """What `gradio_compat.wrap_upload` and `upload_folder` rely on: the upload route calls `gradio.routes.
    upload_fn(request, upload_dir, ...)` at each request (so the wrapper, `chatapp.uploads.own_folder`, decides
    the folder), and events accept files under `upload_folder()`."""
    import inspect

    import gradio.routes
    from gradio.utils import get_upload_folder

    assert getattr(gradio.routes.upload_fn, "wrapped", False), "create_app did not wrap Gradio's upload_fn"
    assert gradio_compat.upload_folder() == get_upload_folder()
    assert gradio_compat.gradio_app(app).uploaded_file_dir == gradio_compat.upload_folder()
    http = TestClient(app)
    http.post("/login", data={"username": "ada", "password": "correct horse"})  # 404 without sign-in: harmless
    assert http.get("/config").status_code == 200  # signed in, or holding a browser id
    answer = http.post("/gradio_api/upload", files={"files": ("a.png", b"\x89PNG\r\n\x1a\n")})
    assert answer.status_code == 200, answer.text
    (handle,) = answer.json()
    assert "/" in handle and not handle.startswith(gradio_compat.upload_folder()), handle
    route = inspect.getsource(gradio.routes.App.create_app)
    assert "await upload_fn(" in route and "app.uploaded_file_dir," in route
