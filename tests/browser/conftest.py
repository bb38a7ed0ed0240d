"""Real-browser fixtures: Debian's Chromium driven by Playwright (sync API), and the chat as a real process.

    browser      (session)   one Chromium for the whole run (tests/fixtures/chromium.py)
    page         (function)  a fresh context (so fresh localStorage: a new anonymous owner) and page per test;
                             a failing test leaves a full-page screenshot in test-artifacts/browser/<test>.png
    fake_model   (function)  the shared vLLM-shaped fake behind `chat`, its knobs reset after each test
    fake_gemini  (function)  the shared Vertex-shaped fake behind `chat` and `llama_chat`, reset likewise
    chat         (session)   `python -m chatapp` on fake_model + fake_gemini, SQLite under a temp dir
    llama_chat   (session)   `python -m chatapp` on the real llama.cpp server (SmolLM2) + fake_gemini

The servers are shared by every test to keep the suite fast on 2 cores; tests stay independent because each
context is a new anonymous owner with its own sidebar, and the fakes' settings are restored after each test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response

from harness.chat_process import ROOT, ChatProcess, start_chat
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from tests.browser.chat_page import ChatPage
from tests.fixtures.chromium import LOADED_MS

ARTIFACTS = ROOT / "test-artifacts" / "browser"
SELF_HOSTED_LABEL = "Gemma (fake vLLM)"
LLAMA_LABEL = "SmolLM2 (llama.cpp)"
GEMINI_LABEL = "Gemini (fake Vertex)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    page: Page | None = getattr(item, "browser_page", None)
    if report.failed and page is not None and not page.is_closed():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.name)}.png"
        try:
            page.screenshot(path=str(path), full_page=True, timeout=10_000)
            report.sections.append(("browser screenshot", str(path)))
        except Exception as exc:  # a screenshot must never hide the real failure
            report.sections.append(("browser screenshot", f"could not be taken: {exc}"))
    if report.failed:
        console: list[str] = getattr(item, "browser_console", [])
        if console:  # the page's own errors (a broken event stream, a failed event) say what the screenshot cannot
            report.sections.append(("browser console (last lines)", "\n".join(console[-80:])))
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, ChatProcess):
                report.sections.append((f"chat log ({name}, last lines)", "\n".join(value.log().splitlines()[-40:])))
    return report


def watch(page: Page, lines: list[str]) -> None:
    """Keep what the page says and what happens to its requests: a failing test prints the last of them. An
    uncaught error or a refused request is no console message, yet it is what stops a page mid-way."""

    def note(text: str, at: float | None = None) -> None:
        """`at`: when the browser did it (epoch seconds). Without it, the time the test process heard of it,
        which is late by as long as the test spent outside Playwright (a `wait_until` or a sleep)."""
        when = "~" if at is None else ""
        at = time.time() if at is None else at
        lines.append(f"{time.strftime('%H:%M:%S', time.localtime(at))}.{int(at % 1 * 1000):03d}{when} {text}")

    def response(r: Response) -> None:
        if "/gradio_api/" in r.url:
            timing = r.request.timing  # startTime: epoch ms; responseStart: ms after it
            at = (timing["startTime"] + max(timing["responseStart"], 0)) / 1000
            note(f"{r.status} {r.request.method} {r.url}", at)

    page.on("console", lambda m: note(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: note(f"page error: {e.message}\n{e.stack}"))
    page.on("requestfailed", lambda r: note(f"failed: {r.method} {r.url} {r.failure}"))
    page.on("framenavigated", lambda f: note(f"navigated: {f.url}") if f == page.main_frame else None)
    page.on("response", response)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(LOADED_MS)
    page = context.new_page()
    request.node.browser_page = page  # for the screenshot on failure
    console: list[str] = []
    request.node.browser_console = console
    watch(page, console)
    yield page
    context.close()


# -- servers -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _fake_model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def _fake_gemini() -> Iterator[FakeVertexServer]:
    with FakeVertexServer() as server:
        yield server


@pytest.fixture
def fake_model(_fake_model: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    yield _fake_model
    _fake_model.mode, _fake_model.tokens_per_s, _fake_model.reply = "normal", 100.0, None


@pytest.fixture
def fake_gemini(_fake_gemini: FakeVertexServer) -> Iterator[FakeVertexServer]:
    yield _fake_gemini
    _fake_gemini.mode, _fake_gemini.tokens_per_s, _fake_gemini.reply = "normal", 200.0, None


def _serve(tmp: Path, gemini: FakeVertexServer, **env: str) -> Iterator[ChatProcess]:
    chat = start_chat({**gemini.vertex_env(tmp), "GEMINI_LABEL": GEMINI_LABEL, **env}, tmp)
    yield chat
    chat.stop()


@pytest.fixture(scope="session")
def chat(
    tmp_path_factory: pytest.TempPathFactory, _fake_model: FakeOpenAIServer, _fake_gemini: FakeVertexServer
) -> Iterator[ChatProcess]:
    yield from _serve(
        tmp_path_factory.mktemp("chat"),
        _fake_gemini,
        SELF_HOSTED_URL=_fake_model.base_url,
        SELF_HOSTED_MODEL=_fake_model.model,
        SELF_HOSTED_LABEL=SELF_HOSTED_LABEL,
    )


@pytest.fixture(scope="session")
def llama_chat(
    tmp_path_factory: pytest.TempPathFactory, llama_server, _fake_gemini: FakeVertexServer
) -> Iterator[ChatProcess]:
    yield from _serve(
        tmp_path_factory.mktemp("llama-chat"),
        _fake_gemini,
        SELF_HOSTED_URL=llama_server.base_url,
        SELF_HOSTED_MODEL=llama_server.model,
        SELF_HOSTED_LABEL=LLAMA_LABEL,
    )


@pytest.fixture
def ui(page: Page, chat: ChatProcess) -> ChatPage:
    """The chat (on the fakes) open in a fresh browser context."""
    return ChatPage(page, chat.url).open()
