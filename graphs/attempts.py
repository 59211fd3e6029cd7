"""Restarts: an agent whose attempt ends with no boxed answer starts again from the task.

The reference agent's rule (the protocol page, "Versions"): a run that ends with
no boxed answer (its turns or its context spent, or a closing reply with no box)
is started again from the task, up to ``max_restarts`` times. With
``restart_summary`` (v1.0, v1.5) the model is first asked, with no tools and a
reply that continues a given, closed thinking, what the attempt tried and found;
the new task carries those summaries. 1.7 restarts on the bare task. As the
reference decides it: an attempt whose turns ran out, with restarts left, is not
asked for an answer (it would be a guess) but summarised at once; an attempt
that may still restart takes only its closing reply's box, no earlier one.

Every attempt stays in the one history (``show`` and ``export`` see them all);
an ``Attempt`` record says where the next one starts, so the model is shown
only the messages of its own attempt, and the turn budget, the duplicate-query
memory and the rollback streak start afresh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from mirograph.agents import prompts
from mirograph.agents.mirothinker.thinking import THINK_CLOSE, split_thinking
from mirograph.graphs.run_control import BUDGET_REASONS
from mirograph.state.schema import AgentState, Attempt


@dataclass(frozen=True)
class Current:
    """Where the attempt in progress starts, and its number (1 for the first)."""

    number: int
    messages_start: int
    queries_start: int
    turns_before: int


def current(state: AgentState) -> Current:
    attempts = state.get("attempts") or []
    if not attempts:
        return Current(1, 0, 0, 0)
    last = attempts[-1]
    return Current(
        number=len(attempts) + 1,
        messages_start=last["messages_end"],
        queries_start=last["queries_end"],
        turns_before=sum(a["turns"] for a in attempts),
    )


def history(state: AgentState) -> list[BaseMessage]:
    """The messages of the attempt in progress: what its model is shown."""
    messages = state.get("messages") or []
    start = current(state).messages_start
    return messages[start:] if start else messages


def seen_queries(state: AgentState) -> list[str]:
    """Queries made in the attempt in progress (an earlier attempt's do not repeat)."""
    queries = state.get("queries") or []
    start = current(state).queries_start
    return queries[start:] if start else queries


def question(state: AgentState) -> str:
    """The task of the attempt in progress: the question, with the earlier attempts'
    summaries when there are any."""
    summaries = [a["summary"] for a in state.get("attempts") or []]
    return prompts.restart_question(state["question"], summaries)


def may_restart(state: AgentState, max_restarts: int, stop_reason: str) -> bool:
    """Whether an attempt that ended with no answer starts again: restarts are left,
    and what ended it was not a budget of the whole run (a restart would overrun it)."""
    return current(state).number <= max_restarts and stop_reason not in BUDGET_REASONS


def record(state: AgentState, stop_reason: str | None, summary: str | None) -> Attempt:
    """The finished attempt's record; the next one starts after all messages so far."""
    now = current(state)
    turns = (state.get("stats") or {}).get("turns", 0) - now.turns_before
    return Attempt(
        attempt=now.number,
        stop_reason=stop_reason,
        turns=turns,
        summary=summary,
        messages_end=len(state.get("messages") or ()),
        queries_end=len(state.get("queries") or ()),
    )


_CALL = re.compile(r"<use_mcp_tool>.*", re.DOTALL)
_EMPTY_BOX = re.compile(r"\\boxed\{\s*\}")


def summary_of(reply: AIMessage) -> str | None:
    """What a failure-summary reply says (the reply as the server sent it, after the
    given prefix): its visible text without calls or empty boxes; failing that, what
    came as thinking (a reasoning parser may take a reply that never writes
    ``</think>`` for thinking); None when it says nothing."""
    text = reply.text
    if THINK_CLOSE in text:
        thinking, visible = split_thinking(text)
    elif text.lstrip().startswith("<think>"):
        thinking, visible = text.lstrip().removeprefix("<think>"), ""  # never closed
    else:
        thinking, visible = "", text
    thinking = thinking or str(reply.additional_kwargs.get("reasoning_content") or "")
    visible = _EMPTY_BOX.sub("", _CALL.sub("", visible)).strip()
    return visible or _EMPTY_BOX.sub("", _CALL.sub("", thinking)).strip() or None


def closing_part(history: list[BaseMessage]) -> tuple[list[BaseMessage], list[BaseMessage]]:
    """An attempt's history split into its work and its closing exchange (the closing
    request and its reply; none when the closing was skipped; a request that got no
    reply is dropped, as the reference drops a last user message)."""
    last = history[-1] if history else None
    before = history[-2] if len(history) >= 2 else None
    if isinstance(last, AIMessage) and isinstance(before, HumanMessage):
        if prompts.is_closing_request(before.text):
            return history[:-2], history[-2:]
    elif isinstance(last, HumanMessage) and prompts.is_closing_request(last.text):
        return history[:-1], []
    return history, []
