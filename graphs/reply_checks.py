"""Which replies are resampled instead of answered (the protocol's rollbacks).

The rules are the reference MiroThinker agent's, as measured (the protocol
page's "Details measured against the reference agent"). A rolled-back reply is
discarded and the same request is sent again: it does not count as a turn, is
never stored, and counts toward the agent's rollback statistics. The reasons:
- ``malformed``: protocol fragments with nothing executable;
- ``unclosed_call``: the reply's last call lacks its closing ``</use_mcp_tool>``;
- ``refusal``: no call, and ``time constraint`` anywhere (thinking included) or
  a visible part that begins with one of two fixed apologies;
- ``degenerate``: the last 50 characters occur more than 5 times in the reply;
- ``duplicate``: a query the agent already made successfully.
Past the rollback limit the reply is accepted as it is (``graphs.model_step``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from langchain_core.messages import AIMessage
from langchain_core.messages.tool import ToolCall

from mirograph.agents.mirothinker.parsing import has_unclosed_call
from mirograph.agents.mirothinker.thinking import split_thinking, with_thinking

#: Anywhere in a reply without a call, thinking included: the model gave up on time.
REFUSAL_PHRASE = "time constraint"
#: Openings of the visible part that are refusals, typographic apostrophes and all
#: (the reference compares them exactly: a plain-ASCII apology is no refusal).
REFUSAL_OPENINGS = ("I\u2019m sorry, but I can\u2019t", "I\u2019m sorry, I cannot solve")
#: A reply whose last ``LOOP_TAIL`` characters occur more than ``LOOP_REPEATS`` times
#: is stuck in a loop.
LOOP_TAIL = 50
LOOP_REPEATS = 5


def whole_text(reply: AIMessage) -> str:
    """The reply as the model wrote it: thinking a reasoning parser split off put back."""
    reasoning = reply.additional_kwargs.get("reasoning_content")
    return with_thinking(reply.text, reasoning if isinstance(reasoning, str) else None)


def is_refusal(reply: AIMessage) -> bool:
    """No call, and ``time constraint`` anywhere, or a visible part that begins with
    one of the two fixed apologies.

    "Begins" is read on the visible part (after ``</think>``, leading blanks
    skipped): a thinking reply's whole text begins with its thinking, so the
    apology could never open it.
    """
    if reply.tool_calls:
        return False
    if REFUSAL_PHRASE in whole_text(reply):
        return True
    return split_thinking(reply.text)[1].lstrip().startswith(REFUSAL_OPENINGS)


def is_degenerate(text: str) -> bool:
    """The last ``LOOP_TAIL`` characters occur more than ``LOOP_REPEATS`` times in
    ``text`` (anywhere, not only as adjacent repeats; counted without overlap)."""
    tail = text[-LOOP_TAIL:]
    return bool(tail) and text.count(tail) > LOOP_REPEATS


def query_key(call: ToolCall, dedupe: Mapping[str, Iterable[str]]) -> str | None:
    """What identifies ``call`` as a query (its tool's declared arguments, compared
    exactly); None for a tool that declares none."""
    fields = dedupe.get(call["name"])
    if not fields:
        return None
    values = {f: call["args"].get(f) for f in fields}
    return f"{call['name']}:{json.dumps(values, sort_keys=True, ensure_ascii=False)}"


def query_keys(reply: AIMessage, dedupe: Mapping[str, Iterable[str]]) -> list[str]:
    """Keys of the calls in ``reply`` that identify queries, in call order."""
    return [key for call in reply.tool_calls if (key := query_key(call, dedupe)) is not None]


def rollback_reason(reply: AIMessage, duplicates: Iterable[str] = ()) -> str | None:
    """Why ``reply`` must be resampled, or None to accept it."""
    if not reply.tool_calls and (
        reply.invalid_tool_calls or reply.response_metadata.get("stray_tags")
    ):
        return "malformed"
    if (reply.tool_calls or reply.invalid_tool_calls) and has_unclosed_call(reply.text):
        return "unclosed_call"
    if is_refusal(reply):
        return "refusal"
    if is_degenerate(whole_text(reply)):
        return "degenerate"
    if any(True for _ in duplicates):
        return "duplicate"
    return None
