"""A page whose event stream breaks (a proxy or the network cuts it, or the replica restarts): Gradio's page marks
the connection lost, shows "Connection Lost", stops sending events, and asks `/gradio_api/app_id` every 2 s; once
the server answers it reloads itself. Refusing that route (as the chat once did) left the page dead for good.
The page must come back by itself, ready, with what is stored, and answer the next message.
"""

from __future__ import annotations

from playwright.sync_api import Response, Route, expect

from tests.browser.chat_page import ChatPage
from tests.fixtures.chromium import LOADED_MS

STREAM = "**/gradio_api/queue/data?*"
RECONNECT = "/gradio_api/app_id"


def test_a_page_whose_event_stream_is_cut_reloads_itself_and_goes_on(ui: ChatPage):
    ui.send_and_wait("Hello", "You said: Hello")
    checks: list[Response] = []
    ui.page.on("response", lambda r: checks.append(r) if r.url.endswith(RECONNECT) else None)

    def cut(route: Route) -> None:
        route.abort("connectionreset")

    ui.page.route(STREAM, cut, times=1)  # the next event's stream, once
    with ui.page.expect_navigation(timeout=LOADED_MS):  # the page reloads itself: nothing here reloads it
        ui.send("Are you there?")
        ui.page.wait_for_event("response", lambda r: r.url.endswith(RECONNECT), timeout=LOADED_MS)
        assert checks[0].status == 200, f"the page's reconnect check was refused ({checks[0].status}): it stays dead"
    ui.wait_ready()
    expect(ui.page.get_by_text("Connection Lost")).to_have_count(0)
    expect(ui.user_messages).to_have_text(["Hello"])  # what is stored; the cut message was never answered
    ui.send_and_wait("Still there?", "You said: Still there?")
