"""Conversations across page loads: reload, new chat, resume, delete, and the Chatbot's retry and undo."""

from __future__ import annotations

import itertools

from playwright.sync_api import Route, expect

from tests.browser.chat_page import ChatPage


def test_reload_shows_the_conversation_in_the_sidebar_and_on_screen(ui: ChatPage):
    ui.send_and_wait("Remember the red kite", "You said: Remember the red kite")
    ui.send_and_wait("And the blue heron", "You said: And the blue heron")

    ui.reload()
    entry = ui.sidebar_entry("Remember the red kite")
    expect(entry).to_have_count(1)
    expect(entry.locator("input")).to_be_checked()  # the open conversation is the selected one
    expect(ui.user_messages).to_have_text(["Remember the red kite", "And the blue heron"])
    expect(ui.bot_messages).to_have_text(["You said: Remember the red kite", "You said: And the blue heron"])


def test_new_chat_then_resume_the_old_one_from_the_sidebar(ui: ChatPage):
    ui.send_and_wait("The first conversation", "You said: The first conversation")
    ui.new_chat()
    expect(ui.sidebar_entries.locator("input:checked")).to_have_count(0)

    ui.send_and_wait("The second conversation", "You said: The second conversation")
    expect(ui.user_messages).to_have_text(["The second conversation"])  # nothing carried over
    # Both are listed, newest first: starting the second must not drop the first from the list.
    expect(ui.sidebar_entries).to_have_count(2)
    expect(ui.sidebar_entries.first).to_contain_text("The second conversation")

    ui.resume("The first conversation")
    expect(ui.user_messages).to_have_text(["The first conversation"])
    expect(ui.bot_messages).to_have_text(["You said: The first conversation"])
    ui.wait_idle()

    # It continues where it stopped, and a reload reopens it.
    ui.send_and_wait("Back again", "You said: Back again")
    ui.reload()
    expect(ui.user_messages).to_have_text(["The first conversation", "Back again"])
    expect(ui.sidebar_entries).to_have_count(2)


def test_a_message_sent_while_new_chat_is_on_its_way_goes_to_the_new_chat(ui: ChatPage):
    # New chat is an unqueued request and Send a queued one: on a busy replica the Send can be handled first.
    # Here New chat's request is held in the browser until the Send has reached the server.
    ui.send_and_wait("The old conversation", "You said: The old conversation")
    held: list[Route] = []
    ui.page.route(
        "**/gradio_api/run/predict", lambda route: held.append(route)
    )  # unqueued events: New chat (and the status timer)
    ui.page.locator("#new-chat").click()
    while not held:
        ui.page.wait_for_timeout(50)  # lets Playwright hand the request over
    with ui.page.expect_response(lambda r: "/gradio_api/queue/join" in r.url):  # the Send is on the server
        ui.send("Meant for the new chat")
    ui.page.wait_for_timeout(1000)  # and being handled
    for route in held:
        route.continue_()
    ui.page.unroute("**/gradio_api/run/predict")
    expect(ui.bot_messages).to_have_text(["You said: Meant for the new chat"])
    expect(ui.user_messages).to_have_text(["Meant for the new chat"])
    ui.wait_idle()
    expect(ui.sidebar_entries).to_have_count(2)
    ui.reload()  # and so it is stored: the old conversation as it was, the message in a conversation of its own
    expect(ui.user_messages).to_have_text(["Meant for the new chat"])
    ui.resume("The old conversation")
    expect(ui.user_messages).to_have_text(["The old conversation"])


def test_delete_a_conversation(ui: ChatPage):
    ui.send_and_wait("Keep this one", "You said: Keep this one")
    ui.new_chat()
    ui.send_and_wait("Delete this one", "You said: Delete this one")
    expect(ui.sidebar_entries).to_have_count(2)

    ui.delete()
    expect(ui.sidebar_entry("Delete this one")).to_have_count(0)
    expect(ui.sidebar_entries).to_have_count(1)
    expect(ui.user_messages).to_have_count(0)
    ui.wait_idle()

    ui.reload()
    expect(ui.sidebar_entry("Keep this one")).to_have_count(1)
    expect(ui.sidebar_entry("Delete this one")).to_have_count(0)
    expect(ui.user_messages).to_have_count(0)


def test_retry_and_undo_the_last_turn(ui: ChatPage, fake_model):
    counter = itertools.count(1)
    fake_model.reply = lambda body: f"Answer {next(counter)}"
    ui.send_and_wait("Question one", "Answer 1")
    ui.send_and_wait("Question two", "Answer 2")

    ui.retry()  # a new reply to the same message replaces the old one
    expect(ui.last_bot).to_have_text("Answer 3")
    expect(ui.user_messages).to_have_text(["Question one", "Question two"])
    expect(ui.bot_messages).to_have_text(["Answer 1", "Answer 3"])
    ui.wait_idle()

    ui.undo()  # the turn goes, and its message comes back to the box for editing
    expect(ui.user_messages).to_have_text(["Question one"])
    expect(ui.bot_messages).to_have_text(["Answer 1"])
    expect(ui.textbox).to_have_value("Question two")
    ui.wait_idle()

    ui.reload()
    expect(ui.user_messages).to_have_text(["Question one"])
    expect(ui.bot_messages).to_have_text(["Answer 1"])


def test_retry_and_undo_the_first_turn_keep_the_sidebar_right(ui: ChatPage, fake_model):
    counter = itertools.count(1)
    fake_model.reply = lambda body: f"Take {next(counter)}"
    ui.send_and_wait("An older chat", "Take 1")
    ui.new_chat()
    ui.send_and_wait("Only turn", "Take 2")

    ui.retry()
    expect(ui.last_bot).to_have_text("Take 3")
    ui.wait_idle()
    expect(ui.sidebar_entries).to_have_count(2)  # still one entry per conversation
    expect(ui.sidebar_entry("Only turn")).to_have_count(1)

    ui.undo()  # nothing left: the conversation is gone from the store and from the list
    expect(ui.user_messages).to_have_count(0)
    expect(ui.sidebar_entry("Only turn")).to_have_count(0)
    ui.wait_idle()
    ui.reload()
    expect(ui.sidebar_entries).to_have_count(1)
    expect(ui.sidebar_entry("An older chat")).to_have_count(1)
