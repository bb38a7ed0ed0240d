"""What a search matches, written once for both stores.

A search is a few words; a conversation matches when its title, or one of its messages, holds every word as
the start of a word there, ignoring case and accents ("kit" finds "Kites", "cafe" finds "Café"). Words shorter
than PREFIX_MIN match whole words only: "a" as a prefix would match nearly every message (measured: ~0.5 s
over 10,000 messages, against ~4 ms for a word). That length is judged on the word as the index will match it,
after splitting on punctuation and `_` (`_w_` is the one-letter word `w`, not three letters). SQLite runs
this through its FTS5 index (`fts_query`, tokenizer `unicode61 remove_diacritics 2`, which folds the same
way), splitting the query with that same tokenizer; Firestore has no full-text index, so its store applies
`matches` to what it reads (see firestore.py), splitting query and text alike with `terms`' rule.
"""

from __future__ import annotations

import re
import unicodedata

MAX_TERMS = 8  # a search box, not a document: more words only cost time
PREFIX_MIN = 3
EXCERPT_CHARS = 120
# Letters and digits: like FTS5's unicode61 tokenizer, `_` and every other punctuation mark separate words.
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower-case, accents removed (NFKD, combining marks dropped): the comparison form of text."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms(query: str) -> list[str]:
    """The words of a search, folded, without duplicates, at most MAX_TERMS."""
    seen: list[str] = []
    for word in _WORD.findall(fold(query)):
        if word not in seen:
            seen.append(word)
    return seen[:MAX_TERMS]


def fts_query(words: list[str]) -> str:
    """An FTS5 MATCH expression: every word quoted (so nothing a person types is FTS syntax), as a prefix
    unless it is shorter than PREFIX_MIN."""
    return " ".join('"' + word.replace('"', '""') + '"' + ("*" if len(word) >= PREFIX_MIN else "") for word in words)


def matches(words: list[str], text: str) -> bool:
    """Whether every word starts some word of `text` (the FTS5 rule, for stores without an index)."""
    if not words:
        return False
    present = _WORD.findall(fold(text))
    return all(
        any(token.startswith(word) if len(word) >= PREFIX_MIN else token == word for token in present) for word in words
    )


def excerpt(words: list[str], text: str, width: int = EXCERPT_CHARS) -> str:
    """A one-line window of `text` around the first matching word, with … where it was cut."""
    flat = " ".join(text.split())
    folded = fold(flat)
    # fold() can change lengths (ß -> ss, ligatures): map back only when it did not.
    at = 0
    if len(folded) == len(flat):
        hits = [m.start() for w in words for m in re.finditer(rf"(?<![^\W_]){re.escape(w)}", folded)]
        at = min(hits) if hits else 0
    start = max(0, at - width // 3)
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")
