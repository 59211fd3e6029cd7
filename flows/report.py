"""What ``show --json`` says about a run: totals per agent, every sub-agent call, and
the entry agent's attempts (``attempts``: one row per attempt, the one in progress
included; an agent with ``max_restarts`` starts again when an attempt ends unanswered).

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
from mirograph.state.registry import RunRecord
from mirograph.state.schema import AgentStats, empty_stats

#: Counters copied from an invocation's stats into its row of the report.
INVOCATION_FIELDS = (
    "turns",
    "tool_calls",
    "model_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "wall_seconds",
)


def build_report(
    record: RunRecord, flow: FlowConfig | None, snapshot: StateSnapshot
) -> dict[str, Any]:
    """The report of a flow run, or of a custom graph's run (``flow`` None)."""
    values = snapshot.values or {}
    top = values.get("agent") or "graph"
    invocations = _unique(
        [*_records(values.get("invocations")), *_pending(values), *in_flight(snapshot, top, 1)]
    )
    agents: dict[str, AgentStats] = {}
    if flow is not None:
        agents = {name: empty_stats() for name in _reachable(flow)}
        _add(agents[flow.entry], values.get("stats") or {})
    for invocation in invocations:
        _add(agents.setdefault(invocation["agent"], empty_stats()), invocation["stats"])
    usage = empty_stats()
    for stats in agents.values():
        _add(usage, dict(stats))
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
        #: The run's totals over all agents (the runner adds the run's own wall time).
        "usage": dict(usage),
        "invocations": [_row(invocation) for invocation in invocations],
        "attempts": attempt_rows(values) if flow is not None else [],
        "warnings": [],
    }


def attempt_rows(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The entry agent's attempts, the last (or current) one included: ``attempt``,
    ``turns``, ``stop_reason`` (None while it runs) and ``summary`` (what the agent
    wrote about a failed attempt for the next one; None when not asked or none given).
    Empty until the agent has started; one row for a run that never restarted."""
    if not values.get("messages"):
        return []
    finished = [a for a in values.get("attempts") or [] if isinstance(a, dict)]
    rows = [
        {
            "attempt": int(a.get("attempt") or i),
            "turns": int(a.get("turns") or 0),
            "stop_reason": a.get("stop_reason"),
            "summary": a.get("summary"),
        }
        for i, a in enumerate(finished, 1)
    ]
    turns = int((values.get("stats") or {}).get("turns") or 0) - sum(r["turns"] for r in rows)
    ended = values.get("phase") in ("done", "restart")
    rows.append(
        {
            "attempt": len(rows) + 1,
            "turns": max(turns, 0),
            "stop_reason": values.get("stop_reason") if ended else None,
            "summary": None,
        }
    )
    return rows


def in_flight(snapshot: StateSnapshot, parent: str, depth: int) -> list[dict[str, Any]]:
    """Agent calls of the step in progress: finished ones from the results they
    saved, unfinished ones from their own checkpoints (nested calls included)."""
    found: list[dict[str, Any]] = []
    for task in snapshot.tasks:
        if isinstance(task.result, dict):
            found.extend(_saved(task.result, depth))
            continue
        sub = task.state if isinstance(task.state, StateSnapshot) else None
        values = (sub.values if sub else None) or {}
        if sub is None or "agent" not in values:
            continue
        found.append(
            {
                "agent": values["agent"],
                "parent": parent,
                "depth": depth,
                "call_id": None,
                "subtask": values.get("question"),
                "status": "running",
                "stop_reason": None,
                "stats": {**empty_stats(), **(values.get("stats") or {})},
                "checkpoint_ns": (sub.config.get("configurable") or {}).get("checkpoint_ns"),
            }
        )
        nested = [*_records(values.get("invocations")), *_pending(values)]
        found.extend({**r, "depth": r["depth"] + depth} for r in nested)
        found.extend(in_flight(sub, values["agent"], depth + 1))
    return found


def _saved(result: dict[str, Any], depth: int) -> list[dict[str, Any]]:
    """Invocation records in a finished task's writes (sub-agent node or custom node)."""
    records = [*_records(result.get("invocations")), *_pending(result)]
    return [{**r, "depth": r["depth"] + depth - 1} for r in records]


def _pending(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Records of finished sub-agent calls not yet merged by ``collect`` (a run
    stopped between the two steps). Only an agent loop's own ``results`` count:
    a custom graph may use that key for something else."""
    results = values.get("results")
    if not isinstance(results, dict):
        return []
    records = []
    for result in results.values():
        if isinstance(result, dict):
            records.extend(_records(result.get("invocations")))
    return records


def _records(items: Any) -> list[dict[str, Any]]:
    """The invocation records among ``items`` (anything else is ignored)."""
    if not isinstance(items, list):
        return []
    return [r for r in items if isinstance(r, dict) and {"agent", "depth", "stats"} <= r.keys()]


def _unique(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finished call once, though a stopped step may hold it in two places."""
    seen: set[str] = set()
    unique = []
    for record in records:
        call = record.get("call_id")
        if call is not None and call in seen:
            continue
        if call is not None:
            seen.add(call)
        unique.append(record)
    return unique


def _row(invocation: dict[str, Any]) -> dict[str, Any]:
    stats = invocation["stats"]
    row = {k: invocation.get(k) for k in ("agent", "parent", "depth", "subtask", "status")}
    row["stop_reason"] = invocation.get("stop_reason")
    row.update({k: stats.get(k, 0) for k in INVOCATION_FIELDS})
    row["wall_seconds"] = round(float(row["wall_seconds"] or 0), 3)
    row["call_id"] = invocation.get("call_id")
    row["checkpoint_ns"] = invocation.get("checkpoint_ns")
    return row


def _add(total: AgentStats, stats: dict[str, Any]) -> None:
    for key, value in total.items():
        added = stats.get(key, 0) or 0
        if isinstance(value, float):
            total[key] = round(value + float(added), 3)  # type: ignore[literal-required]
        else:
            total[key] = value + int(added)  # type: ignore[literal-required]


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
