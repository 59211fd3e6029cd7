"""Which replies are resampled instead of answered (the protocol's rollbacks).

A rolled-back reply is discarded and the same request is sent again. It does
not count as a turn, is never stored, and counts toward the agent's rollback
statistics. The reasons:
- protocol fragments with nothing executable;
- a refusal;
- degenerate repetition;
- a query the agent already made (same search, URL or sub-task), unless the
  model keeps insisting on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from langchain_core.messages import AIMessage

from mirograph.agents.mirothinker.boxed import extract_boxed
from mirograph.agents.mirothinker.thinking import split_thinking

_REFUSAL = re.compile(
    r"^\s*(?:I['’]m sorry|I am sorry|I apologi[sz]e|I can(?:no|')t (?:help|assist|comply)"
    r"|I (?:won['’]t|will not) (?:help|assist)|As an AI\b)",
    re.IGNORECASE,
)
_TAIL_CHARS = 1200


def is_refusal(reply: AIMessage) -> bool:
    """A short reply, no call and no answer, that opens like a refusal."""
    if reply.tool_calls or reply.invalid_tool_calls:
        return False
    visible = split_thinking(reply.text)[1]
    return len(visible) < 500 and extract_boxed(visible) is None and bool(_REFUSAL.match(visible))


def is_degenerate(text: str, *, min_span: int = 400) -> bool:
    """The reply ends in one unit repeated over ``min_span`` characters or more (a loop)."""
    tail = text[-_TAIL_CHARS:]
    for unit_length in range(1, 201):
        repeats = max(min_span // unit_length, 4)
        span = unit_length * repeats
        if span > len(tail):
            break
        unit = tail[-unit_length:]
        if unit.strip() and tail[-span:] == unit * repeats:
            return True
    return False


def query_keys(reply: AIMessage, dedupe: Mapping[str, Iterable[str]]) -> list[str]:
    """Keys of the calls in ``reply`` that identify queries (tools that declare them)."""
    keys = []
    for call in reply.tool_calls:
        fields = dedupe.get(call["name"])
        if not fields:
            continue
        values = {f: _normalise(call["args"].get(f)) for f in fields}
        keys.append(f"{call['name']}:{json.dumps(values, sort_keys=True, ensure_ascii=False)}")
    return keys


def rollback_reason(reply: AIMessage, duplicates: Iterable[str] = ()) -> str | None:
    """Why ``reply`` must be resampled, or None to accept it."""
    if not reply.tool_calls and (
        reply.invalid_tool_calls or reply.response_metadata.get("stray_tags")
    ):
        return "malformed"
    if is_refusal(reply):
        return "refusal"
    if is_degenerate(reply.text):
        return "degenerate"
    if any(True for _ in duplicates):
        return "duplicate"
    return None


def _normalise(value: object) -> object:
    return " ".join(value.lower().split()) if isinstance(value, str) else value
