"""Plan, research, then an independent verifier that can send the work back.

A custom mirograph graph: three agent loops used as nodes of one LangGraph
``StateGraph``. The verifier sees only the question and the draft answer, never
the researcher's history, and either accepts it or sends it back with its
objection, at most ``MAX_ROUNDS`` times. Run and resume it like a flow::

    mirograph run "How many moons does Mars have?" --flow examples/verify_loop.py:build_graph
    mirograph resume RUN_ID

The model server is ``$MIROGRAPH_BASE_URL`` (default ``http://localhost:8000/v1``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from langgraph.graph import END, START, StateGraph

from mirograph.graphs.custom import AgentResult, GraphContext
from mirograph.state.schema import RunState

MAX_ROUNDS = 3

PLANNER = (
    "# Agent Specific Objective\n\nYou are the planner. Write a short numbered research"
    " plan for the question, and give the whole plan inside \\boxed{}."
)
VERIFIER = (
    "# Agent Specific Objective\n\nYou are an independent verifier. Check the draft answer"
    " against the question. Reply \\boxed{ACCEPT} if it holds, otherwise"
    " \\boxed{REJECT: <the specific problem>}."
)


class VerifyState(RunState, total=False):
    plan: str
    draft: str
    verdict: str
    rounds: int


def model() -> dict[str, Any]:
    return {
        "base_url": os.environ.get("MIROGRAPH_BASE_URL", "http://localhost:8000/v1"),
        "model": os.environ.get("MIROGRAPH_MODEL", "mirothinker"),
        "max_tokens": 16384,
        "context_tokens": 262144,
    }


def research_task(state: Mapping[str, Any]) -> str:
    task = f"{state['question']}\n\nFollow this plan:\n{state.get('plan', '')}"
    if state.get("verdict", "").startswith("REJECT"):
        task += (
            f"\n\nYour earlier answer was {state.get('draft')!r}."
            f" Verifier feedback: {state['verdict']}"
        )
    return task


def verify_task(state: Mapping[str, Any]) -> str:
    return f"Question: {state['question']}\nDraft answer: {state.get('draft')}"


def after_verify(state: Mapping[str, Any]) -> str:
    rejected = state.get("verdict", "").startswith("REJECT")
    return "research" if rejected and state.get("rounds", 0) < MAX_ROUNDS else "finish"


def build_graph(ctx: GraphContext) -> StateGraph:
    planner = ctx.agent("planner", model=model(), objective=PLANNER, max_turns=3)
    researcher = ctx.agent("researcher", model=model(), tools=["files"], max_turns=100)
    verifier = ctx.agent("verifier", model=model(), objective=VERIFIER, max_turns=3)

    def drafted(state: Mapping[str, Any], result: AgentResult) -> dict[str, Any]:
        return {"draft": result.answer or "", "rounds": state.get("rounds", 0) + 1}

    graph = StateGraph(VerifyState)
    graph.add_node("plan", planner.node(ask=lambda s: s["question"], into=_set("plan")))
    graph.add_node("research", researcher.node(ask=research_task, into=drafted))
    graph.add_node("verify", verifier.node(ask=verify_task, into=_set("verdict")))
    graph.add_node("finish", lambda state: {"answer": state.get("draft")})
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "research")
    graph.add_edge("research", "verify")
    graph.add_conditional_edges("verify", after_verify, ["research", "finish"])
    graph.add_edge("finish", END)
    return graph


def _set(key: str) -> Callable[[Mapping[str, Any], AgentResult], dict[str, Any]]:
    """An ``into`` callback that stores the agent's answer under ``key``."""
    return lambda state, result: {key: (result.answer or "").strip()}
