"""Text shaping every layer shares: one line from an exception, a line clipped to a width.

Error messages, events and views show a person one line; these are the one place
that decides how a message is cut, so the cut-offs agree everywhere.
"""

from __future__ import annotations

import re

#: How much of an exception's first line a message keeps.
FIRST_LINE_CHARS = 500


def first_line(
    exc: BaseException, limit: int = FIRST_LINE_CHARS, *, empty: str = "(no message)"
) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters.

    ``empty`` when it has none; a placeholder when its ``__str__`` raises: a tool's
    or a server library's exception is not ours to trust.
    """
    try:
        lines = str(exc).strip().splitlines()
    except Exception:
        return "(its message cannot be shown)"
    return lines[0][:limit] if lines else empty


def describe(exc: BaseException, limit: int = FIRST_LINE_CHARS) -> str:
    """``ClassName: first line``: what failed and why, on one line."""
    return f"{type(exc).__name__}: {first_line(exc, limit)}"


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def clip(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters, ending in "…" when cut.

    Words are read only until the line is full: a 100,000-character tool result
    costs what its first ``width`` characters cost, however much whitespace it holds.
    """
    words: list[str] = []
    size = -1
    for word in _WORD.finditer(text):
        words.append(word.group())
        size += len(words[-1]) + 1
        if size > width:
            break
    line = " ".join(words)
    return line if len(line) <= width else line[: width - 1] + "…"


_WORD = re.compile(r"\S+")
