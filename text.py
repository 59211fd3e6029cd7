"""Text shaping every layer shares: one line from an exception, a line clipped to a width.

Error messages, events and views show a person one line; these are the one place
that decides how a message is cut, so the cut-offs agree everywhere.
"""

from __future__ import annotations

#: How much of an exception's first line a message keeps.
FIRST_LINE_CHARS = 500


def first_line(exc: BaseException, limit: int = FIRST_LINE_CHARS) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters.

    "(no message)" when it has none, and when its ``__str__`` raises: a tool's or a
    server library's exception is not ours to trust.
    """
    try:
        lines = str(exc).strip().splitlines()
    except Exception:
        return "(its message cannot be shown)"
    return lines[0][:limit] if lines else "(no message)"


def describe(exc: BaseException, limit: int = FIRST_LINE_CHARS) -> str:
    """``ClassName: first line``: what failed and why, on one line."""
    return f"{type(exc).__name__}: {first_line(exc, limit)}"


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def clip(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters, ending in "…" when cut."""
    line = one_line(text[: width * 4])  # a long text is cut before it is split
    return line if len(line) <= width else line[: width - 1] + "…"
