"""The thinking part of a MiroThinker reply, closed by ``</think>``."""

from __future__ import annotations

THINK_CLOSE = "</think>"


def split_thinking(text: str) -> tuple[str, str]:
    """``(thinking, visible)``; thinking is empty when the reply has no ``</think>``."""
    head, sep, tail = text.rpartition(THINK_CLOSE)
    if not sep:
        return "", text
    return head.removeprefix("<think>").strip(), tail.strip()


def with_thinking(content: str, reasoning: str | None) -> str:
    """The reply as the model wrote it: thinking put back in front of the content.

    Servers with a reasoning parser return the thinking separately; the
    weights expect it in the history all the same, so it is re-joined. The
    parser leaves the newlines after ``</think>`` on the content; they are
    dropped, as the chat template drops them.
    """
    if not reasoning:
        return content
    visible = content.lstrip("\n")
    return f"<think>\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{visible}"
