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

# Block structure is all that is needed (where fenced code is): the inline rules, the costly part, are off.
_PARSER = MarkdownIt("commonmark").enable("table")
_PARSER.core.ruler.disable(["inline", "text_join"])
_BACKTICKS = re.compile(r"`+")
# What the inline scan acts on: a backslash escape of ASCII punctuation, a backtick run, "<", "![".
_SPECIAL = re.compile(r"\\[!-/:-@\[-`{-~]|`+|<|!\[")
# Line endings as Markdown knows them (str.splitlines also splits on \x85, \u2028 and others, which would put
# this module's line numbers out of step with the parser's).
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def safe_markdown(text: str) -> str:
    """`text` with every `<` outside code escaped and images turned into text; code left as written.

    Costs ~0 for text without "<" or "![", else ~2 ms per KB with fenced code (the block parse), far less
    without."""
    if "<" not in text and "![" not in text:
        return text  # nothing to escape (most messages): skip the parse
    fenced = _top_level_fence_lines(text) if "```" in text or "~~~" in text else set()
    return "".join(line if number in fenced else _inline(line) for number, line in enumerate(_LINES.findall(text)))


def _top_level_fence_lines(text: str) -> set[int]:
    """Line numbers inside top-level fenced code blocks, fence lines included."""
    lines: set[int] = set()
    for token in _PARSER.parse(text):
        if token.type == "fence" and token.level == 0 and token.map:
            lines.update(range(*token.map))
    return lines


def _inline(line: str) -> str:
    out: list[str] = []
    done = 0  # line[:done] is in `out`
    at = 0
    while (found := _SPECIAL.search(line, at)) is not None:
        token, start = found.group(), found.start()
        if token == "<":
            out += [line[done:start], "&lt;"]
            done = at = found.end()
        elif token == "![":
            out += [line[done:start], "!\\["]
            done = at = found.end()
        elif token.startswith("\\"):
            # A backslash escape: the next character is literal text ("\`" opens no code span). An escaped "<"
            # is written as the entity alone, so nothing depends on the escape being read the same way.
            if token == "\\<":
                out += [line[done:start], "&lt;"]
                done = found.end()
            at = found.end()
        else:  # a backtick run: a code span if a run of the same width closes it on this line
            end = _span_end(line, found.end(), len(token))
            at = end if end is not None else found.end()
    out.append(line[done:])
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
