"""Extract the final answer from ``\\boxed{...}``.

The protocol's answer is the content of the last box in the closing reply;
the model sometimes writes a template box (``\\boxed{?}``) after the real one,
so placeholders are skipped and the previous real box wins.
"""

from __future__ import annotations

import re

__all__ = ["PLACEHOLDERS", "extract_boxed", "is_placeholder"]

PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "",
        "?",
        "??",
        "???",
        "...",
        "…",
        "unknown",
        "n/a",
        "none",
        "null",
        "tbd",
        "answer",
        "final answer",
        "your answer",
        "your final answer",
        "[answer]",
        "<answer>",
    }
)

_BOX = "\\boxed"
_BOX_OPEN_RE = re.compile(r"\\boxed\s*\{")


def is_placeholder(content: str) -> bool:
    """True for box contents that stand for an answer rather than being one."""
    return content.strip().casefold() in PLACEHOLDERS


def extract_boxed(text: str) -> str | None:
    """Return the last non-placeholder box's content, stripped, or None.

    Boxes are found from the end, one at a time, so a reply of many boxes
    costs no list of them all; each character is read a bounded number of times.
    """
    end = len(text)
    while (start := text.rfind(_BOX, 0, end)) >= 0:
        end = start
        opening = _BOX_OPEN_RE.match(text, start)
        if opening is None:
            continue
        content = _box_content(text, opening.end()).strip()
        if not is_placeholder(content):
            return content
    return None


def _box_content(text: str, start: int) -> str:
    """Read up to the brace that closes the box; an unclosed box runs to the end.

    A backslash escapes the next character, so ``\\{`` and ``\\}`` (literal
    braces in LaTeX) do not change the nesting depth.
    """
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return text[start:index]
            depth -= 1
        index += 1
    return text[start:]
