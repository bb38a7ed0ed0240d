"""The chat page as a test sees it: one object per browser tab, named after what a user does.

Selectors rely on the stable elem_ids in chatapp/ui.py and on Gradio's own data-testid / aria-label
attributes of the Chatbot (user / bot messages, Retry / Undo buttons) and of toasts.
"""

from __future__ import annotations

import requests
from playwright.sync_api import Download, Locator, Page, expect

from chatapp.ui import BROWSER_STORAGE_KEY
from tests.fixtures.chromium import LOADED_MS

BOT = "#chatbot [data-testid='bot']"
USER = "#chatbot [data-testid='user']"
PAGE_STATE = """() => ({
    url: location.href, document: document.readyState, body: {...document.body.dataset},
    session: window.__gradio_session_hash__, messages: document.querySelectorAll('#chatbot .message').length,
    toasts: [...document.querySelectorAll("[data-testid='toast-text']")].map((t) => t.innerText),
})"""


class ChatPage:
    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url

    # -- navigation ---------------------------------------------------------------------------------------
    def open(self) -> ChatPage:
        self.page.goto(self.url)
        return self.wait_ready()

    def reload(self) -> ChatPage:
        self.page.reload()
        return self.wait_ready()

    def wait_ready(self) -> ChatPage:
        # ui.py marks the body once the page's load event (owner, open conversation, sidebar) has finished.
        try:
            self.page.wait_for_selector("body[data-chat-ready='true']", state="attached", timeout=LOADED_MS)
        except Exception as exc:  # say what the page was doing: loaded or not, which session, any toast
            raise AssertionError(f"the page never became ready: {self.page.evaluate(PAGE_STATE)}") from exc
        return self

    # -- locators -----------------------------------------------------------------------------------------
    @property
    def textbox(self) -> Locator:
        return self.page.locator("#message textarea")

    @property
    def bot_messages(self) -> Locator:
        return self.page.locator(BOT)

    @property
    def user_messages(self) -> Locator:
        return self.page.locator(USER)

    @property
    def last_bot(self) -> Locator:
        return self.bot_messages.last

    @property
    def sidebar_entries(self) -> Locator:
        return self.page.locator("#sessions label")

    def sidebar_entry(self, title: str) -> Locator:
        return self.sidebar_entries.filter(has_text=title)

    @property
    def toasts(self) -> Locator:
        return self.page.locator("[data-testid='toast-text']")

    @property
    def model_status(self) -> Locator:
        return self.page.locator("#model-status")

    # -- actions ------------------------------------------------------------------------------------------
    def type(self, text: str) -> None:
        self.textbox.fill(text)

    def send(self, text: str) -> None:
        self.type(text)
        self.page.locator("#send").click()

    def send_and_wait(self, text: str, reply: str) -> None:
        """Send `text` and wait until the newest bot message reads exactly `reply`, with the stream done."""
        turns = self.bot_messages.count()
        self.send(text)
        expect(self.bot_messages).to_have_count(turns + 1)
        # innerText: a line break renders as <br>, which textContent would drop ("a<br>b" -> "ab").
        expect(self.last_bot).to_have_text(reply, use_inner_text=True)
        self.wait_idle()

    def wait_idle(self, timeout_ms: float = LOADED_MS) -> None:
        """Wait until no event is updating the chatbot (Gradio hides its status tracker when done)."""
        self.page.wait_for_function(
            "() => document.querySelector(\"#chatbot [data-testid='status-tracker']\")?.classList.contains('hide')",
            timeout=timeout_ms,
        )

    def choose_model(self, label: str) -> None:
        self.page.locator("#model input").click()
        self.page.get_by_role("option", name=label).click()
        expect(self.page.locator("#model input")).to_have_value(label)

    def new_chat(self) -> None:
        """New chat, applied: the page keeps the open conversation in its browser storage, which changes once the
        server has switched (on an empty chat nothing on screen does, so a Send could otherwise go first)."""
        before = self.page.evaluate("(key) => localStorage.getItem(key)", BROWSER_STORAGE_KEY)
        self.page.locator("#new-chat").click()
        self.page.wait_for_function(
            "([key, before]) => localStorage.getItem(key) !== before", arg=[BROWSER_STORAGE_KEY, before]
        )
        expect(self.bot_messages).to_have_count(0)
        expect(self.user_messages).to_have_count(0)

    def resume(self, title: str) -> None:
        self.sidebar_entry(title).click()

    def ask_delete(self) -> None:
        """The sidebar's delete button, which only asks for confirmation."""
        self.page.locator("#delete-chat").click()

    def delete(self) -> None:
        """Delete the open conversation: ask, then confirm."""
        self.ask_delete()
        self.page.locator("#confirm-delete").click()

    def keep(self) -> None:
        """Answer the delete confirmation with "Keep it"."""
        self.page.locator("#keep-chat").click()

    def search(self, text: str) -> None:
        """Type into the search box over the sidebar (results replace the list; empty shows it all). Typed key
        by key, as a person does: the box searches on input events, which `fill` does not send."""
        box = self.page.locator("#search").locator("textarea, input").first
        box.click()
        box.press("Control+a")
        box.press("Backspace")
        if text:
            box.press_sequentially(text)

    def _manage(self) -> None:
        """Open the "This conversation" accordion (rename, download) unless it is open."""
        if not self.page.locator("#rename").is_visible():
            self.page.locator("#manage").get_by_text("This conversation").click()

    def rename(self, title: str) -> None:
        self._manage()
        self.page.locator("#rename-title").locator("textarea, input").first.fill(title)
        self.page.locator("#rename").click()

    def download(self, format_label: str) -> Download:
        """Download the open conversation as "Markdown" or "JSON"."""
        self._manage()
        self.page.locator("#export-format").get_by_text(format_label, exact=True).click()
        with self.page.expect_download() as download:
            self.page.locator("#export").click()
        return download.value

    def stop(self) -> None:
        self.page.locator("#stop").click()

    def retry(self) -> None:
        self.page.locator("#chatbot button[aria-label='Retry']").last.click()

    def undo(self) -> None:
        self.page.locator("#chatbot button[aria-label='Undo']").last.click()

    def sample_last_bot(self) -> str:
        """The newest bot message's text now, or '' when there is none yet."""
        return self.page.evaluate(
            "(sel) => { const all = document.querySelectorAll(sel); return all.length ? all[all.length - 1]"
            ".innerText : ''; }",
            BOT,
        )

    def wait_for_growth(self, than: str, timeout_ms: float = LOADED_MS) -> str:
        """Wait until the newest bot message is a longer text than `than`; return it."""
        self.page.wait_for_function(
            "([sel, n]) => { const all = document.querySelectorAll(sel);"
            " return all.length > 0 && all[all.length - 1].innerText.length > n; }",
            arg=[BOT, len(than)],
            timeout=timeout_ms,
        )
        return self.sample_last_bot()

    def assert_server_up(self) -> None:
        assert requests.get(f"{self.url}/healthz", timeout=5).json() == {"status": "ok"}
