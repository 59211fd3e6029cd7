"""Shipped policies for the simulated model, named as ``mirograph.agents.sim.policies:NAME``.

They write replies in MiroThinker's shape (thinking, ``</think>``, visible
text, at most one ``<use_mcp_tool>`` call, ``\\boxed{}`` answers) so that the
engine's parsing, tool loop and answer extraction run as against the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call

__all__ = ["answer", "echo_last", "notes", "tool_loop"]


def tool_loop(
    body: Mapping[str, Any],
    turns: int = 3,
    server: str = "tool-demo",
    tool: str = "echo",
    arg: str = "index",
    answer: Any = "done",
) -> str:
    """Call one tool per reply until ``turns`` assistant replies exist, then answer.

    The count comes from the history alone, so the policy stays stateless; any
    request past the budget (a closing request included) gets the boxed answer.
    """
    done = _assistant_count(body)
    if done < int(turns):
        step = done + 1
        return (
            f"Step {step} of {turns}: I need more information, so I will call {tool}.\n"
            "</think>\n\n"
            f"Calling {tool} for step {step}.\n\n"
            f"{render_call(str(server), str(tool), {str(arg): step})}"
        )
    return _boxed(f"All {turns} steps are done; I can give the final answer.", str(answer))


def answer(body: Mapping[str, Any], text: Any = "42") -> str:
    """Answer at once, without calling any tool."""
    return _boxed("The answer is known without tools.", str(text))


def echo_last(body: Mapping[str, Any]) -> str:
    """Box the last user message's text, to show exactly what the engine sent."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            text = content_text(message.get("content"))
            return _boxed("Repeating the last user message.", text)
    return _boxed("There is no user message to repeat.", "")


_NOTES_STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("write_file", {"path": "notes/plan.md", "content": "1. Read the question.\n2. Answer it.\n"}),
    ("list_files", {"path": "."}),
    ("read_file", {"path": "notes/plan.md"}),
)


def notes(body: Mapping[str, Any]) -> str:
    """Use the ``files`` tool set for three turns (write, list, read), then answer.

    The shipped single-agent flow has exactly these tools, so this policy
    shows a whole investigation loop without a GPU.
    """
    done = _assistant_count(body)
    if done < len(_NOTES_STEPS):
        tool, args = _NOTES_STEPS[done]
        return (
            f"Step {done + 1}: I will use {tool} on the workspace.\n</think>\n\n"
            f"Using {tool}.\n\n{render_call('tool-files', tool, args)}"
        )
    return _boxed("The plan was written, listed and read back.", "plan has 2 steps")


def _assistant_count(body: Mapping[str, Any]) -> int:
    return sum(
        1
        for message in body.get("messages") or []
        if isinstance(message, Mapping) and message.get("role") == "assistant"
    )


def _boxed(thinking: str, value: str) -> str:
    return f"{thinking}\n</think>\n\nFinal answer: \\boxed{{{value}}}"


def content_text(content: Any) -> str:
    """Text of a message content given as a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return "" if content is None else str(content)
