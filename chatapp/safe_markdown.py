"""Message text made inert before the Chatbot renders it as Markdown: no HTML element can come from it.

The Chatbot renders Markdown and then sanitizes the HTML, but its sanitizer keeps `<form>`, `<input>`,
`<button>`, `<style>` and remote `<img>`: a prompt-injected model could plant a working "sign in again" form,
or leak conversation text through an image URL that loads without a click. So raw HTML and image syntax are
escaped in the Markdown source itself, and what Markdown makes of the rest (paragraphs, lists, tables, code
blocks, http(s) links) still renders.

Every `<` outside code becomes `&lt;` (shown as "<"), and `![` becomes `!\\[` (an image becomes its text). Only
code keeps its `<` as written, because Markdown shows code verbatim. Which text is code is decided
conservatively, so that the browser's Markdown parser cannot see code where this one does not:
- fenced code blocks at the top level of the message (as CommonMark's parser sees them); fences nested in
  lists or quotes, and indented code, are escaped like text (they may then show "&lt;": a display flaw, never
  active HTML);
- inline code spans that open and close on one line and hold no `|` (a table cell boundary would split them).
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

_PARSER = MarkdownIt("commonmark").enable("table")
_BACKTICKS = re.compile(r"`+")
# Line endings as Markdown knows them (str.splitlines also splits on \x85, \u2028 and others, which would put
# this module's line numbers out of step with the parser's).
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def safe_markdown(text: str) -> str:
    """`text` with every `<` outside code escaped and images turned into text; code left as written."""
    lines = _LINES.findall(text)
    fenced = _top_level_fence_lines(text)
    out: list[str] = []
    for number, line in enumerate(lines):
        out.append(line if number in fenced else _inline(line))
    return "".join(out)


def _top_level_fence_lines(text: str) -> set[int]:
    """Line numbers inside top-level fenced code blocks, fence lines included."""
    lines: set[int] = set()
    for token in _PARSER.parse(text):
        if token.type == "fence" and token.level == 0 and token.map:
            lines.update(range(*token.map))
    return lines


def _inline(line: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line) and line[i + 1] in _PUNCTUATION:
            # A backslash escape: the next character is literal text ("\`" opens no code span). An escaped "<"
            # is written as the entity alone, so nothing depends on the escape being read the same way.
            out.append("&lt;" if line[i + 1] == "<" else line[i : i + 2])
            i += 2
        elif char == "`":
            opener = _BACKTICKS.match(line, i)
            assert opener is not None
            end = _span_end(line, opener.end(), len(opener.group()))
            if end is None:  # no closing run: the backticks are plain text
                out.append(opener.group())
                i = opener.end()
            else:
                out.append(line[i:end])
                i = end
        elif char == "<":
            out.append("&lt;")
            i += 1
        elif char == "!" and line.startswith("[", i + 1):
            out.append("!\\[")
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _span_end(line: str, start: int, width: int) -> int | None:
    """Where a code span opened by `width` backticks ending at `start` closes (after its closing run)."""
    for run in _BACKTICKS.finditer(line, start):
        if len(run.group()) == width:
            content = line[start : run.start()]
            if "|" in content or "\n" in content or "\r" in content:
                return None
            return run.end()
    return None
