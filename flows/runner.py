"""Run, resume and inspect investigations: the Python API behind the CLI.

A run is a LangGraph thread in the store (``thread_id`` = run id) plus a row
in the run registry. The graph runs with ``durability="sync"``: each step is
committed before the next model call, so ``resume`` continues a killed run
from its last completed step and never repeats a completed turn.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from mirograph.agents.errors import ModelUnavailableError
from mirograph.agents.tools.base import ToolContext
from mirograph.flows.graph_ref import canonical, load_builder
from mirograph.flows.loader import FlowError, apply_overrides, ready_to_run, validate_flow
from mirograph.flows.report import build_report
from mirograph.graphs.builder import build_flow_graph, flow_recursion_limit
from mirograph.graphs.config import FlowConfig
from mirograph.graphs.custom import GraphContext
from mirograph.state.redact import redact
from mirograph.state.registry import RunRecord, UnknownRunError
from mirograph.state.store import Store, mirograph_home, open_store


class RunNotFoundError(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in this store; `mirograph ls` lists run ids")


class RunFailedError(RuntimeError):
    """The run stopped on an unexpected error; it stays resumable."""


@dataclass
class RunOutcome:
    id: str
    status: str
    answer: str | None
    reason: str | None


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def run_dir(run_id: str) -> Path:
    return mirograph_home() / "runs" / run_id


async def start_run(
    question: str,
    flow: FlowConfig | str,
    *,
    run_id: str | None = None,
    store_url: str | None = None,
) -> RunOutcome:
    """Start a new investigation and run it until it completes or pauses.

    ``flow`` is a validated flow, or a custom graph reference
    (``path/to/file.py:build_graph`` or ``package.module:build_graph``).
    """
    if not question.strip():
        raise ValueError("the question is empty; pass the question to investigate")
    if isinstance(flow, str):
        ref = canonical(flow)
        load_builder(ref)  # a broken reference is rejected before anything is stored
        name, spec = ref, {GRAPH_KEY: ref}
    else:
        name, spec = flow.name, flow.model_dump(mode="json")
    run_id = run_id or new_run_id()
    async with open_store(store_url) as store:
        record = RunRecord(
            id=run_id,
            question=question,
            flow=name,
            flow_spec=spec,
            status="running",
            pid=os.getpid(),
        )
        # Built first: a graph that cannot be built is rejected before the run exists.
        async with _compiled(store, record) as run:
            store.registry.create(record)
            return await _execute(store, record, {"question": question}, run)


async def resume_run(
    run_id: str, *, store_url: str | None = None, overrides: Sequence[str] = ()
) -> RunOutcome:
    """Continue a paused, failed or killed run from its last checkpoint."""
    async with open_store(store_url) as store:
        record = _get(store, run_id)
        if record.effective_status == "completed":
            return RunOutcome(run_id, "completed", record.answer, record.reason)
        if overrides:
            if GRAPH_KEY in record.flow_spec:
                raise FlowError(f"run {run_id}: --set applies to flow files, not custom graphs")
            spec = apply_overrides(record.flow_spec, overrides, source=f"run {run_id}")
            flow = validate_flow(spec, source=f"run {run_id}")
            record.flow_spec = flow.model_dump(mode="json")
            store.registry.update(run_id, flow_spec=record.flow_spec)
        async with _compiled(store, record) as run:
            if run.flow is not None:
                ready_to_run(run.flow, source=f"run {run_id}")
            snapshot = await run.graph.aget_state(run.config)
            pending = None if snapshot.values else {"question": record.question}
            return await _execute(store, record, pending, run)


async def run_report(run_id: str, *, store_url: str | None = None) -> dict[str, Any]:
    """What ``show --json`` prints: the registry row, per-agent totals, sub-agent calls."""
    async with open_store(store_url) as store:
        record = _get(store, run_id)
        async with _compiled(store, record) as run:
            snapshot = await run.graph.aget_state(run.config, subgraphs=True)
        report = build_report(record, run.flow, snapshot)
        if run.flow is not None:
            report["warnings"] = await asyncio.to_thread(run.flow.environment_warnings)
        return report


async def list_runs(*, store_url: str | None = None, limit: int = 200) -> list[RunRecord]:
    async with open_store(store_url) as store:
        return store.registry.list(limit)


# -- internals ------------------------------------------------------------------

#: ``flow_spec`` key of a run whose graph is a custom builder, not a flow file.
GRAPH_KEY = "graph"


@dataclass
class _Run:
    graph: CompiledStateGraph
    config: dict[str, Any]
    #: The flow, or None for a custom graph.
    flow: FlowConfig | None


def _get(store: Store, run_id: str) -> RunRecord:
    try:
        return store.registry.get(run_id)
    except UnknownRunError:
        raise RunNotFoundError(run_id) from None


@asynccontextmanager
async def _compiled(store: Store, record: RunRecord) -> AsyncIterator[_Run]:
    """The run's graph on the store's checkpointer; model connections closed after."""
    workspace = run_dir(record.id) / "workspace"
    if GRAPH_KEY in record.flow_spec:
        ctx = GraphContext(record.id, workspace, store.blobs)
        try:
            graph = load_builder(record.flow_spec[GRAPH_KEY])(ctx)
            compiled = graph.compile(checkpointer=store.checkpointer, name=record.flow)
            workspace.mkdir(parents=True, exist_ok=True)
            yield _Run(compiled, _config(record.id, ctx.recursion_limit), None)
        finally:
            await ctx.aclose()
        return
    flow = validate_flow(record.flow_spec, source=f"run {record.id}")
    built = build_flow_graph(flow, ToolContext(run_id=record.id, workspace=workspace), store.blobs)
    try:
        compiled = built.graph.compile(checkpointer=store.checkpointer, name=flow.name)
        workspace.mkdir(parents=True, exist_ok=True)
        config = _config(record.id, flow_recursion_limit(flow))
        config["max_concurrency"] = flow.max_parallel
        yield _Run(compiled, config, flow)
    finally:
        await built.aclose()


def _config(run_id: str, limit: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": run_id}, "recursion_limit": limit}


async def _execute(
    store: Store, record: RunRecord, graph_input: dict[str, Any] | None, run: _Run
) -> RunOutcome:
    run_id, graph, config = record.id, run.graph, run.config
    store.registry.update(run_id, status="running", reason=None, pid=os.getpid())
    try:
        await graph.ainvoke(graph_input, config, durability="sync")
    except ModelUnavailableError as exc:
        store.discard_uncommitted()
        reason = redact(str(exc))
        store.registry.update(run_id, status="paused", reason=reason)
        return RunOutcome(run_id, "paused", None, reason)
    except BaseException as exc:
        # An interrupted step may hold an open write (its blobs) that would
        # lock the registry's row update: it was never checkpointed, drop it.
        store.discard_uncommitted()
        lines = str(exc).strip().splitlines()
        reason = redact(f"{type(exc).__name__}: {lines[0] if lines else '(no message)'}")
        interrupted = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)
        status = "paused" if isinstance(exc, interrupted) else "failed"
        store.registry.update(run_id, status=status, reason=reason)
        if status == "failed":
            raise RunFailedError(
                f"run {run_id} stopped: {reason}; fix the cause, then `mirograph resume {run_id}`"
            ) from exc
        raise
    snapshot = await graph.aget_state(config)
    values = snapshot.values
    report = build_report(record, run.flow, snapshot)
    store.registry.update(
        run_id, status="completed", answer=values.get("answer"), usage=report["agents"]
    )
    return RunOutcome(run_id, "completed", values.get("answer"), None)
