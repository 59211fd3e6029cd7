"""What ``show --json`` says about a run: totals per agent and every sub-agent call.

Finished sub-agent calls are recorded in the caller's checkpointed state.
Calls still in flight (a paused or killed run) are read from their own
subgraph checkpoints, so a report of an interrupted run shows how far each
one got.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langgraph.types import StateSnapshot

from mirograph.graphs.config import FlowConfig
from mirograph.graphs.sub_agents import node_name
from mirograph.state.registry import RunRecord
from mirograph.state.schema import AgentStats, empty_stats

#: Counters copied from an invocation's stats into its row of the report.
INVOCATION_FIELDS = ("turns", "tool_calls", "prompt_tokens", "completion_tokens", "cached_tokens")


def build_report(record: RunRecord, flow: FlowConfig, snapshot: StateSnapshot) -> dict[str, Any]:
    values = snapshot.values or {}
    invocations = [*(values.get("invocations") or ()), *in_flight(snapshot, flow, flow.entry, 1)]
    agents: dict[str, AgentStats] = {name: empty_stats() for name in _reachable(flow)}
    _add(agents[flow.entry], values.get("stats") or {})
    for invocation in invocations:
        _add(agents.setdefault(invocation["agent"], empty_stats()), invocation["stats"])
    return {
        "id": record.id,
        "question": record.question,
        "flow": record.flow,
        "status": record.effective_status,
        "reason": record.reason,
        "answer": values.get("answer", record.answer),
        "stop_reason": values.get("stop_reason"),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "agents": agents,
        "invocations": [_row(invocation) for invocation in invocations],
    }


def in_flight(
    snapshot: StateSnapshot, flow: FlowConfig, parent: str, depth: int
) -> list[dict[str, Any]]:
    """Sub-agent calls of the step in progress: finished ones from their saved
    results, unfinished ones from their own checkpoints (nested calls too)."""
    nodes = {node_name(sub): sub for sub in flow.agents[parent].sub_agents}
    found: list[dict[str, Any]] = []
    for task in snapshot.tasks:
        agent = nodes.get(task.name)
        if agent is None:
            continue
        if isinstance(task.result, dict) and task.result.get("results"):
            for result in task.result["results"].values():
                found.extend(
                    {**r, "depth": r["depth"] + depth - 1} for r in result.get("invocations", ())
                )
            continue
        sub = task.state if isinstance(task.state, StateSnapshot) else None
        values = (sub.values if sub else None) or {}
        found.append(
            {
                "agent": agent,
                "parent": parent,
                "depth": depth,
                "call_id": None,
                "subtask": values.get("question"),
                "status": "running",
                "stop_reason": None,
                "stats": {**empty_stats(), **(values.get("stats") or {})},
            }
        )
        if sub is not None:
            nested = values.get("invocations") or ()
            found.extend({**r, "depth": r["depth"] + depth} for r in nested)
            found.extend(in_flight(sub, flow, agent, depth + 1))
    return found


def _row(invocation: dict[str, Any]) -> dict[str, Any]:
    stats = invocation["stats"]
    row = {k: invocation.get(k) for k in ("agent", "parent", "depth", "subtask", "status")}
    row["stop_reason"] = invocation.get("stop_reason")
    row.update({k: stats.get(k, 0) for k in INVOCATION_FIELDS})
    row["call_id"] = invocation.get("call_id")
    return row


def _add(total: AgentStats, stats: dict[str, Any]) -> None:
    for key in total:
        total[key] += int(stats.get(key, 0) or 0)  # type: ignore[literal-required]


def _reachable(flow: FlowConfig) -> Iterable[str]:
    """The entry agent and every agent it can call, in call order."""
    order: list[str] = []
    stack = [flow.entry]
    while stack:
        name = stack.pop(0)
        if name not in order:
            order.append(name)
            stack.extend(flow.agents[name].sub_agents)
    return order
