"""The Gradio 6 interface: layout and event wiring only. Chat, model switch, generation controls, a sidebar of
past conversations (search, rename, export), and the API (`/chat`, `/resume`, `/conversations`, `/usage`,
`/delete`, `/rename`, `/search`, `/export`).

Split like Gradio's own ChatInterface: what is shown lives in `chatapp.ui_render`, the page's handlers in
`chatapp.ui_handlers`, the API's in `chatapp.ui_api`; every handler works through the tab's `OpenConversation`
(`chatapp.open_conversation`). The `gr.BrowserState` keeps the id of the open conversation across page
reloads (Gradio's session_hash changes on every load), with the key of the per-tab state that last served it
(`Tab.shown`); the server checks both like any other data.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from chatapp import gradio_compat
from chatapp.conversations import Conversations
from chatapp.models.base import MAX_TOKENS_RANGE, TEMPERATURE_RANGE, TOP_P_RANGE
from chatapp.status import ModelStatus
from chatapp.ui_api import ApiHandlers
from chatapp.ui_events import CallersUploads
from chatapp.ui_handlers import PageHandlers
from chatapp.ui_render import Tab
from chatapp.uploads import UploadRegistry

__all__ = ["TAB_TTL_S", "ChatUI", "Tab"]

BROWSER_STORAGE_KEY = "hybrid-chat"
# Gradio sends a BrowserState's key to every browser in /config, so it protects nothing; the stored value (the
# open conversation id) is data the server checks. A fixed key keeps it readable across restarts and replicas.
BROWSER_STATE_KEY = "hybrid-chat-open-conversation"
EXPORT_FORMATS = [("Markdown", "markdown"), ("JSON", "json")]
# The export arrives as a JSON value ({filename, mime_type, content}); the browser turns it into a download
# itself, so no file is written on the server (Gradio's file cache is never cleaned and is served by URL).
DOWNLOAD_JS = """(file) => {
    if (!file || !file.content) return;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([file.content], {type: file.mime_type + ";charset=utf-8"}));
    link.download = file.filename;
    document.body.appendChild(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}"""
UPLOAD_EXPIRY_S = 3600
# Per-tab state (the open conversation, a failed message) is dropped this long after the tab's last event, so
# abandoned sessions cannot pile up (Gradio otherwise keeps up to 10,000). A tab that comes back later reopens
# its conversation from the store (the page remembers which one is open).
TAB_TTL_S = 3600
# The page numbers each message it sends (and each retry), and Stop sends the number of the latest one: the
# server can then tell "stop the message I just sent" from a Stop pressed on an idle page. The number is taken
# when the person acts (capturing listeners, installed once the page is ready), not in the event's own js,
# which Gradio runs later: a Stop clicked right after Send had its request out first. It travels in the hidden
# `sequence` input, last; js on an event with a Python function returns that function's inputs.
READY_JS = """() => {
    const sent = () => { window.hybridChatSent = (window.hybridChatSent || 0) + 1; };
    document.addEventListener('click', (e) => {
        if (e.target.closest('#send') || e.target.closest("#chatbot button[aria-label='Retry']")) sent();
    }, true);
    document.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.target.closest('#message')) sent();
    }, true);
    document.body.dataset.chatReady = 'true';
}"""
SEND_JS = "(...inputs) => [...inputs.slice(0, %d), window.hybridChatSent || 0]"
# The page's conversation switches, numbered as they happen (the last input is the number); a Send carries the
# last one (ACCEPT_JS), so the server can tell a switch it has not seen yet (PageHandlers.accept).
SWITCH_JS = "(...inputs) => [...inputs.slice(0, -1), window.hybridChatSwitches = (window.hybridChatSwitches || 0) + 1]"
ACCEPT_JS = "(...inputs) => [...inputs.slice(0, 3), window.hybridChatSent || 0, window.hybridChatSwitches || 0]"
STOP_JS = "(tab) => [tab, window.hybridChatSent || 0]"


class ChatUI:
    def __init__(
        self, conversations: Conversations, status: ModelStatus, uploads: UploadRegistry | None = None
    ) -> None:
        callers_uploads = CallersUploads(uploads)
        self.conversations = conversations
        self.page = PageHandlers(conversations, status, callers_uploads)
        self.api = ApiHandlers(conversations, callers_uploads)

    def build(self, title: str = "hybrid-chat") -> gr.Blocks:
        page, api = self.page, self.api
        labels = self.conversations.models
        gradio_compat.skip_session_config()  # sessions keep no copy of the page for deep links (refused)
        # delete_cache: uploads never sent (a closed tab) leave Gradio's cache within two hours; sent ones are
        # deleted as soon as they are copied to the media store.
        with gr.Blocks(title=title, fill_height=True, delete_cache=(UPLOAD_EXPIRY_S, UPLOAD_EXPIRY_S)) as demo:
            tab = gr.State(None, time_to_live=TAB_TTL_S)
            sequence = gr.Number(visible=False, precision=0)  # the page's message number (SEND_JS)
            switch = gr.Number(visible=False, precision=0)  # the page's conversation switch number (SWITCH_JS)
            browser = gr.BrowserState({"session_id": None}, storage_key=BROWSER_STORAGE_KEY, secret=BROWSER_STATE_KEY)
            with gr.Sidebar(label="Conversations"):
                who = gr.HTML(elem_id="signed-in")
                new_button = gr.Button("➕ New chat", variant="primary", elem_id="new-chat")
                search_box = gr.Textbox(
                    placeholder="Search your conversations", show_label=False, elem_id="search", max_lines=1
                )
                sessions = gr.Radio(choices=[], label="Past conversations", elem_id="sessions")
                with gr.Accordion("This conversation", open=False, elem_id="manage"):
                    with gr.Row():
                        title_box = gr.Textbox(
                            placeholder="A new title", show_label=False, max_lines=1, scale=3, elem_id="rename-title"
                        )
                        rename_button = gr.Button("Rename", scale=1, elem_id="rename")
                    with gr.Row():
                        export_format = gr.Radio(
                            EXPORT_FORMATS, value="markdown", show_label=False, scale=3, elem_id="export-format"
                        )
                        export_button = gr.Button("Download", scale=1, elem_id="export")
                    exported = gr.JSON(visible=False)
                delete_button = gr.Button("🗑️ Delete this conversation", variant="stop", elem_id="delete-chat")
                with gr.Row(visible=False, elem_id="confirm-delete-row") as confirm_row:
                    confirm = gr.Button("Delete for good", variant="stop", elem_id="confirm-delete")
                    keep = gr.Button("Keep it", elem_id="keep-chat")
                gr.Markdown("**Models**")
                # Filled by the page's load event, so every page load shows the latest check.
                status = gr.Markdown(elem_id="model-status")
                usage_today = gr.Markdown(elem_id="usage-today")
            # allow_tags=False: no custom tag survives either (message text is escaped before it gets here).
            chatbot = gr.Chatbot(
                label="Chat", elem_id="chatbot", scale=1, height="60vh", buttons=["copy"], allow_tags=False
            )
            answered = gr.Markdown(elem_id="answered-by")
            with gr.Row():
                textbox = gr.MultimodalTextbox(
                    placeholder="Type a message and press Enter; attach up to 5 images (PNG, JPEG, WebP, GIF)",
                    show_label=False,
                    scale=8,
                    elem_id="message",
                    file_types=["image"],
                    file_count="multiple",
                    sources=["upload"],
                    submit_btn=False,
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            first = self.conversations.options(labels[0])
            with gr.Accordion("Model and settings", open=True):
                model = gr.Dropdown(labels, value=labels[0], label="Model", elem_id="model")
                with gr.Row():
                    temperature = gr.Slider(
                        *TEMPERATURE_RANGE,
                        value=first.temperature,
                        step=0.05,
                        label="Temperature",
                        elem_id="temperature",
                    )
                    top_p = gr.Slider(*TOP_P_RANGE, value=first.top_p, step=0.01, label="Top-p", elem_id="top-p")
                    max_tokens = gr.Slider(
                        *MAX_TOKENS_RANGE, value=first.max_tokens, step=1, label="Max tokens", elem_id="max-tokens"
                    )
                    thinking = gr.Dropdown(
                        list(first.thinking_levels),
                        value=first.thinking,
                        label="Thinking",
                        visible=bool(first.thinking_levels),
                        elem_id="thinking",
                    )
                model_note = gr.Markdown(first.note, elem_id="model-note")
                system_prompt = gr.Textbox(label="System prompt", lines=2, elem_id="system-prompt")
            # The /chat API's inputs; the thinking level is the page's only (an API call gets the model's default).
            controls = [model, temperature, top_p, max_tokens, system_prompt]
            model.change(
                page.model_controls,
                [model],
                [temperature, top_p, max_tokens, thinking, model_note],
                queue=False,
                api_visibility="private",
            )
            private: dict[str, Any] = {"api_visibility": "private"}

            loading = demo.load(page.load, [browser], [tab, browser, chatbot, sessions, who, status], **private)
            # Browser-only marker that the page knows its owner and conversation: before that, a message would
            # start a conversation the sidebar never lists. Tests wait for it instead of guessing a delay.
            loading.then(None, js=READY_JS, **private)
            gr.Timer(10).tick(page.model_status, None, status, queue=False, **private)
            loading.then(page.usage_line, None, usage_today, **private)

            # Queued, because only queued events carry a gr.Error's message to the browser (an unqueued one shows
            # a bare "Error"); no progress overlay, which on error would cover the chat and the message box.
            sending = gr.on(
                [textbox.submit, send.click],
                page.accept,
                [textbox, tab, browser, sequence, switch],
                [tab, chatbot, textbox, browser],
                js=ACCEPT_JS,
                show_progress="hidden",
                **private,
            )
            replied = [tab, chatbot, sessions, textbox, browser]
            streaming = sending.success(page.respond, [tab, *controls, thinking], replied, **private)
            # Send, Retry, Undo and Delete carry the conversation on screen (`browser`): a replica that never saw
            # this tab rebuilds it from the store instead of acting on an empty one (PageHandlers._tab). Queued,
            # so the toast saying so reaches the browser.
            retrying = chatbot.retry(
                page.retry,
                [tab, browser, sequence],
                [tab, chatbot, browser],
                js=SEND_JS % 2,
                show_progress="hidden",
                **private,
            )
            restreaming = retrying.success(page.respond, [tab, *controls, thinking], replied, **private)
            # Not Gradio's `cancels`: see ui_render.Tab.stop_at. Unqueued, so it takes effect while replies stream.
            stop.click(page.stop, [tab, sequence], None, js=STOP_JS, queue=False, show_progress="hidden", **private)
            for replying in (streaming, restreaming):
                replying.then(page.after_reply, [tab], [answered, usage_today], **private)
            # Queued so that its gr.Error (store unreachable) reaches the browser.
            chatbot.undo(page.undo, [tab, browser], [tab, chatbot, textbox, sessions, browser], **private)

            fresh = [tab, browser, chatbot, sessions]
            new_button.click(page.new_chat, [tab, switch], fresh, js=SWITCH_JS, queue=False, **private)
            # The Chatbot's own clear (trash) icon empties the screen: it starts a new conversation too, so
            # the model never sees a conversation the person no longer does.
            chatbot.clear(page.new_chat, [tab, switch], fresh, js=SWITCH_JS, queue=False, **private)
            # preprocess=False: the Radio's own check of an id it does not list answers with a Python type repr;
            # `resume` checks the id itself (and whose it is).
            sessions.input(
                page.resume,
                [sessions, tab, switch],
                [tab, browser, chatbot],
                js=SWITCH_JS,
                api_name="open",
                preprocess=False,
                **private,
            )
            delete_button.click(page.ask_delete, None, [delete_button, confirm_row], queue=False, **private)
            keep.click(page.keep, None, [delete_button, confirm_row], queue=False, **private)
            deleted = [*fresh, delete_button, confirm_row]
            confirm.click(page.confirm_delete, [tab, browser, switch], deleted, js=SWITCH_JS, **private)
            gr.on(
                [title_box.submit, rename_button.click],
                page.rename_open,
                [title_box, tab],
                [tab, sessions, title_box],
                **private,
            )
            # Queued (a gr.Error reaches the browser); the last keystroke wins while typing. `change`, not
            # `input`: clearing the box (select all, delete) must show the whole list again.
            search_box.change(
                page.search_sidebar,
                [search_box, tab],
                [tab, sessions],
                trigger_mode="always_last",
                show_progress="hidden",
                **private,
            )
            export_button.click(page.export_open, [export_format, tab], [tab, exported], **private).success(
                None, [exported], None, js=DOWNLOAD_JS, **private
            )

            # API-only endpoints, wired to hidden components so their inputs are exactly the visible controls.
            api_reply = gr.Textbox(visible=False)
            # Text, or {"text": …, "files": [handle_file(…), …]}: a JSON input takes both forms.
            api_message = gr.JSON(visible=False, label="message")
            api_conversation_id = gr.Textbox(visible=False)
            api_json = gr.JSON(visible=False)
            # preprocess=False: the sliders' and dropdown's own checks would answer a bad value with a message
            # that names no control ("Could not preprocess input component at index 2"); ours name it.
            hidden = gr.Button(visible=False)
            hidden.click(
                api.api_chat, [api_message, *controls, tab], [api_reply, tab], api_name="chat", preprocess=False
            )
            hidden.click(
                api.api_resume, [api_conversation_id, tab], [api_json, tab], api_name="resume", preprocess=False
            )
            hidden.click(api.api_conversations, None, api_json, api_name="conversations")
            hidden.click(api.api_usage, None, api_json, api_name="usage")
            hidden.click(
                api.api_delete, [api_conversation_id, tab], [api_json, tab], api_name="delete", preprocess=False
            )
            api_text = gr.Textbox(visible=False)
            hidden.click(api.api_rename, [api_conversation_id, api_text], api_json, api_name="rename", preprocess=False)
            hidden.click(api.api_search, [api_text], api_json, api_name="search", preprocess=False)
            hidden.click(api.api_export, [api_conversation_id, api_text], api_json, api_name="export", preprocess=False)
        gradio_compat.resolve_type_hints(demo)  # once here, not on every event
        return demo
