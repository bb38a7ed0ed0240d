"""Managing conversations in a browser: rename, search over the sidebar, download as Markdown or JSON, and a
message whose reply failed still there (with its error) after a reload, ready to retry."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.chat_page import ChatPage
from tests.browser.conftest import SELF_HOSTED_LABEL


def test_rename_search_and_download(ui: ChatPage):
    ui.send_and_wait("Remember the red kite", "You said: Remember the red kite")
    ui.new_chat()
    ui.send_and_wait("Taxes are due in April", "You said: Taxes are due in April")

    ui.rename("Tax <b>notes</b>")
    expect(ui.sidebar_entry("Tax <b>notes</b>")).to_have_count(1)  # shown as text, never as markup
    ui.reload()
    expect(ui.sidebar_entry("Tax <b>notes</b>")).to_have_count(1)
    expect(ui.sidebar_entry("Remember the red kite")).to_have_count(1)

    ui.search("kite")  # a word of the other conversation's title
    expect(ui.sidebar_entries).to_have_count(1)
    expect(ui.sidebar_entries.first).to_contain_text("Remember the red kite")
    ui.search("april")  # a word of a message: the entry shows where it matched
    expect(ui.sidebar_entries).to_have_count(1)
    expect(ui.sidebar_entries.first).to_contain_text("Tax <b>notes</b> · You said: Taxes are due in April")
    ui.search("walrus")
    expect(ui.sidebar_entries).to_have_count(0)
    ui.search("")
    expect(ui.sidebar_entries).to_have_count(2)

    markdown = ui.download("Markdown")
    assert markdown.suggested_filename.startswith("tax-b-notes-b-") and markdown.suggested_filename.endswith(".md")
    text = Path(markdown.path()).read_text(encoding="utf-8")
    assert text.startswith("# Tax &lt;b>notes&lt;/b>\n") and "You said: Taxes are due in April" in text

    exported = ui.download("JSON")
    document = json.loads(Path(exported.path()).read_text(encoding="utf-8"))
    assert document["title"] == "Tax <b>notes</b>"
    assert [m["content"] for m in document["messages"]] == [
        "Taxes are due in April",
        "You said: Taxes are due in April",
    ]


def test_a_failed_message_survives_a_reload_and_can_be_retried(ui: ChatPage, fake_model):
    ui.choose_model(SELF_HOSTED_LABEL)  # that model itself: an automatic choice would answer through another
    fake_model.mode = "loading"  # the model server answers 503 while it loads
    ui.send("Are you there?")
    expect(ui.last_bot).to_contain_text("is waking up")  # 503: starting, which scale to zero calls waking
    ui.wait_idle()

    ui.reload()
    expect(ui.user_messages).to_have_text(["Are you there?"])
    expect(ui.last_bot).to_contain_text("is waking up")  # the error is shown with it
    expect(ui.sidebar_entry("Are you there?")).to_have_count(1)  # and the conversation is listed

    fake_model.mode = "normal"
    # The reload chose the first model (Auto), which sends nothing to a server it last saw waking until a status
    # check sees it ready (chatapp.models.waking): retry with the model itself, as the person had chosen.
    ui.choose_model(SELF_HOSTED_LABEL)
    ui.retry()
    expect(ui.last_bot).to_have_text("You said: Are you there?")
    ui.wait_idle()
    ui.reload()
    expect(ui.user_messages).to_have_text(["Are you there?"])
    expect(ui.bot_messages).to_have_text(["You said: Are you there?"])  # answered: no error any more


def test_a_message_over_the_window_says_so_and_stays_after_a_reload(ui: ChatPage, fake_model):
    ui.choose_model(SELF_HOSTED_LABEL)
    fake_model.mode = "too_long"  # vLLM's HTTP 400 for a prompt over the model's window
    ui.send("A very long message")
    expect(ui.last_bot).to_contain_text("at most 4,096 tokens at once, and this request has 9,000")
    expect(ui.last_bot).to_contain_text("Shorten the message")
    ui.wait_idle()
    ui.reload()
    expect(ui.user_messages).to_have_text(["A very long message"])
    expect(ui.last_bot).to_contain_text("at most 4,096 tokens")
    ui.undo()  # taken back into the box: gone from the conversation, also after a reload
    expect(ui.textbox).to_have_value("A very long message")
    expect(ui.user_messages).to_have_count(0)
    ui.wait_idle()
    ui.reload()
    expect(ui.user_messages).to_have_count(0)
    expect(ui.sidebar_entry("A very long message")).to_have_count(0)
