"""chatapp.export on its own: a fence a message leaves open is closed the way CommonMark closes it, so it never
swallows the messages after it; stamps, names and the failed message as a reader sees them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from markdown_it import MarkdownIt

from chatapp.export import Export, filename, to_json, to_markdown
from chatapp.history.base import StoredMessage, Unanswered

AT = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def message(seq: int, content: str, role: str = "user", model: str | None = None) -> StoredMessage:
    return StoredMessage(role, content, model, AT, seq)


def headings(markdown: str) -> list[str]:
    """The h2 headings a CommonMark reader shows: a message swallowed by an open fence has none."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]


@pytest.mark.parametrize(
    "content",
    [
        "```\nstill code\n~~~\nstill code: a tilde fence does not close a backtick one",
        "~~~\nstill code\n```\nstill code: a backtick fence does not close a tilde one",
        "````\nstill code\n```\nstill code: a shorter fence does not close a longer one",
        "```\nclosed\n```\n~~~~\nopen again",
    ],
)
def test_a_fence_left_open_is_closed_so_the_next_message_is_a_message(content: str):
    messages = [message(0, content), message(1, "the answer", "assistant", "M"), message(2, "after the fence")]
    text = to_markdown("Fences", messages, None, AT)
    assert headings(text) == ["You · 2026-12-06 09:30 UTC", "M · 2026-12-06 09:30 UTC", "You · 2026-12-06 09:30 UTC"]
    assert "<p>after the fence</p>" in MarkdownIt("commonmark").render(text)


def test_a_closed_fence_gets_no_extra_fence():
    content = "```\ncode\n```\n\n~~~~\nmore\n~~~~~"
    text = to_markdown("t", [message(0, content)], None, AT)
    assert text.endswith(f"\n\n{content}\n")


def test_the_failed_message_and_its_error_are_shown_inert():
    failed = Unanswered("why <b>?", "The model\n  is <down>.", 1, AT)
    text = to_markdown("<i>t</i>", [message(0, "q"), message(1, "a", "assistant", "M")], failed, AT)
    assert text.splitlines()[0] == "# &lt;i>t&lt;/i>"
    assert text.endswith("## You · 2026-12-06 09:30 UTC\n\nwhy &lt;b>?\n\n*No reply: The model is &lt;down>.*\n")
    assert to_markdown("", [], None, AT).startswith("# Untitled conversation\n\n*Exported 2026-12-06 09:30 UTC.*")


def test_a_reply_without_a_model_name_is_the_assistants():
    text = to_markdown("t", [message(0, "q"), message(1, "a", "assistant")], None, AT)
    assert "\n\n## Assistant · 2026-12-06 09:30 UTC\n\na\n" in text


def test_json_keeps_every_text_as_written():
    failed = Unanswered("why <b>?", "down", 1, AT)
    text = to_json("c-1", "<i>t</i> Ünïcode", [message(0, "```\nq")], failed, AT)
    assert text.startswith('{\n  "id": "c-1",\n  "title": "<i>t</i> Ünïcode",\n') and text.endswith("}\n")
    document = json.loads(text)
    assert document == {
        "id": "c-1",
        "title": "<i>t</i> Ünïcode",
        "exported_at": AT.isoformat(),
        "messages": [{"role": "user", "content": "```\nq", "model": None, "created_at": AT.isoformat()}],
        "unanswered": {"content": "why <b>?", "error": "down", "created_at": AT.isoformat()},
    }


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Trip / plans: Ünïcode!", "trip-plans-n-code-abcdef12.md"),
        ("", "conversation-abcdef12.md"),
        ("---", "conversation-abcdef12.md"),
        ("x" * 59 + " y", "x" * 59 + "-abcdef12.md"),
        (" " + "x" * 70, "x" * 60 + "-abcdef12.md"),  # the cut comes after the leading "-" is gone
        ("Xylophone notes X", "xylophone-notes-x-abcdef12.md"),
    ],
)
def test_file_names_are_portable(title: str, expected: str):
    assert filename("abcdef1234567890", title, "md") == expected


def test_the_api_shape_of_an_export():
    assert Export("a.md", "text/markdown", "# t\n").as_dict() == {
        "filename": "a.md",
        "mime_type": "text/markdown",
        "content": "# t\n",
    }
