"""Images from the browser: attach one, see the reply, switch models with it in context, reload and see it
again; the local text-only model answers a picture with a sentence. The image is served by the chat itself
(`/media/...`), which the page's Content-Security-Policy allows, and it really loads (naturalWidth > 0)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.chat_page import ChatPage
from tests.browser.conftest import GEMINI_LABEL, LLAMA_LABEL
from tests.browser.test_models import greedy_and_short
from tests.media.images import PNG

LOADED = "(img) => img.complete && img.naturalWidth > 0"


def attach(ui: ChatPage, path: Path) -> None:
    ui.page.locator("#message input[type='file']").set_input_files(str(path))
    # The textbox shows a thumbnail once Gradio's upload route has answered.
    expect(ui.page.locator("#message img")).to_have_count(1)


def test_an_image_is_answered_kept_across_a_model_switch_and_shown_after_a_reload(
    ui: ChatPage, fake_model, fake_gemini, tmp_path: Path
):
    picture = tmp_path / "red-dot.png"
    picture.write_bytes(PNG)
    attach(ui, picture)
    ui.send_and_wait("What is this?", "You said: What is this? [images in context: 1]")
    shown = ui.user_messages.first.locator("img")
    expect(shown).to_have_count(1)
    assert re.fullmatch(r"/media/[0-9a-f]{32}/[0-9a-f]{32}", shown.get_attribute("src") or "")
    ui.page.wait_for_function(f"() => ({LOADED})(document.querySelector(\"#chatbot [data-testid='user'] img\"))")
    expect(ui.page.locator("#message img")).to_have_count(0)  # the box is empty again

    ui.choose_model(GEMINI_LABEL)
    ui.send_and_wait("Still see it?", "You said: Still see it? (3 messages in context) [images in context: 1]")

    ui.reload()
    expect(ui.user_messages).to_have_count(2)
    again = ui.user_messages.first.locator("img")
    expect(again).to_have_count(1)
    again.evaluate(LOADED)
    ui.page.wait_for_function(f"() => ({LOADED})(document.querySelector(\"#chatbot [data-testid='user'] img\"))")


def test_the_text_only_local_model_answers_an_image_with_a_sentence(page: Page, llama_chat, tmp_path: Path):
    ui = ChatPage(page, llama_chat.url).open()
    ui.choose_model(LLAMA_LABEL)
    greedy_and_short(ui, 8)
    picture = tmp_path / "dot.png"
    picture.write_bytes(PNG)
    attach(ui, picture)
    ui.send("What is this?")
    expect(ui.last_bot).to_contain_text(f"{LLAMA_LABEL} could not take the images")
    expect(ui.last_bot).not_to_contain_text("Traceback")
    ui.wait_idle()
