"""Run, resume and inspect investigations: the Python API behind the CLI.

A run is a LangGraph thread in the store (``thread_id`` = run id) plus a row
in the run registry. The graph runs with ``durability="sync"``: each step is
committed before the next model call, so ``resume`` continues a killed run
from its last completed step and never repeats a completed turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from mirograph.agents import prompts
from mirograph.agents.tools.base import ToolContext, tool_specs
from mirograph.errors import (
    FlowError,
    ModelUnavailableError,
    RunBusyError,
    RunFailedError,
    RunNotFoundError,
    StoreUnavailableError,
    UserInputError,
)
from mirograph.flows.events import RunEvents, events_path, read_events
from mirograph.flows.graph_ref import canonical, load_builder
from mirograph.flows.live import publisher, redis_url
from mirograph.flows.loader import apply_overrides, ready_to_run, validate_flow
from mirograph.flows.report import build_report
from mirograph.flows.runs import find_run
from mirograph.flows.stand_in import stand_in_graph
from mirograph.flows.workspace_sync import restore_workspace, syncing_workspace
from mirograph.graphs.agent_loop import CHARS_PER_TOKEN, AgentLoop
from mirograph.graphs.builder import build_flow_graph, flow_recursion_limit
from mirograph.graphs.config import FlowConfig
from mirograph.graphs.custom import DEFAULT_GRAPH_STEPS, GraphContext
from mirograph.graphs.run_control import Budgets, PauseRequested, RunControl, controlling
from mirograph.graphs.sub_agents import node_name
from mirograph.state.events import read_all
from mirograph.state.leases import Lease, process_alive
from mirograph.state.redact import redact
from mirograph.state.registry import RunRecord, check_run_id
from mirograph.state.store import Store, mirograph_home, open_store, shown_url
from mirograph.text import describe, first_line


@dataclass
class RunOutcome:
    id: str
    status: str
    answer: str | None
    reason: str | None


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def run_dir(run_id: str) -> Path:
    return mirograph_home() / "runs" / check_run_id(run_id)


#: Statuses of a run that ended: ``resume`` returns them as they are.
ENDED = ("completed", "no_answer")


async def start_run(
    question: str,
    flow: FlowConfig | str,
    *,
    run_id: str | None = None,
    store_url: str | None = None,
    control: RunControl | None = None,
) -> RunOutcome:
    """Start a new investigation and run it until it completes or pauses.

    ``flow`` is a validated flow, or a custom graph reference
    (``path/to/file.py:build_graph`` or ``package.module:build_graph``).
    ``control`` receives the run's events and can pause it (``request_pause``).
    """
    if not question.strip():
        raise UserInputError("the question is empty; pass the question to investigate")
    if isinstance(flow, str):
        ref = canonical(flow)
        load_builder(ref)  # a broken reference is rejected before anything is stored
        name, spec = ref, {GRAPH_KEY: ref}
    else:
        ready_to_run(flow, source=flow.name)  # a key its tools need is missing: refuse now
        name, spec = flow.name, flow.model_dump(mode="json")
    run_id = check_run_id(new_run_id() if run_id is None else run_id)
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
        async with compiled_run(store, record) as run:
            if run.entry is not None:
                check_question_fits(run.entry, question)
            async with holding_lease(store, run_id) as lease:
                store.registry.create(record)
                return await _execute(store, record, {"question": question}, run, control, lease)


async def resume_run(
    run_id: str,
    *,
    store_url: str | None = None,
    overrides: Sequence[str] = (),
    control: RunControl | None = None,
    flow: FlowConfig | None = None,
) -> RunOutcome:
    """Continue a paused, failed or killed run from its last checkpoint.

    ``overrides`` (``--set``) change the stored flow; ``flow`` replaces it (a bench
    whose flow file was fixed continues its unfinished runs on the fixed one)."""
    async with open_store(store_url) as store:
        record = get_run(store, run_id)
        if flow is not None and flow.model_dump(mode="json") == record.flow_spec:
            flow = None  # the same flow: nothing to change
        if record.status in ENDED:
            if overrides:
                raise UserInputError(
                    f"run {run_id} is {record.status}: there is nothing to continue, so"
                    " --set changes nothing; start a new run with the changed flow"
                )
            return _ended(record)
        async with holding_lease(store, run_id) as lease:
            # Read again under the lease: a runner that just let go may have finished it.
            record = get_run(store, run_id)
            if record.status in ENDED:
                return _ended(record)
            changed = bool(overrides) or flow is not None
            if changed:
                record, flow = _overridden(record, overrides, flow)
                await _refuse_dropped_calls(store, record, flow)
            async with compiled_run(store, record) as run:
                if run.flow is not None:
                    ready_to_run(run.flow, source=f"run {run_id}")
                snapshot = await run.graph.aget_state(run.config)
                if changed:  # saved only once the changed flow is known to build and run
                    store.registry.update(run_id, flow_spec=record.flow_spec, lease=lease)
                pending = None if snapshot.values else {"question": record.question}
                return await _execute(store, record, pending, run, control, lease)


def _ended(record: RunRecord) -> RunOutcome:
    return RunOutcome(record.id, record.status, record.answer, record.reason)


def _overridden(
    record: RunRecord, overrides: Sequence[str], flow: FlowConfig | None = None
) -> tuple[RunRecord, FlowConfig]:
    """The run with its flow replaced by ``flow`` (if given) and ``--set`` applied,
    validated (nothing saved yet)."""
    source = f"run {record.id}"
    if GRAPH_KEY in record.flow_spec:
        raise FlowError(f"{source}: --set applies to flow files, not custom graphs")
    base = flow.model_dump(mode="json") if flow is not None else record.flow_spec
    spec = apply_overrides(copy.deepcopy(base), overrides, source=source)
    flow = validate_flow(spec, source=source)
    return dataclasses.replace(record, flow_spec=flow.model_dump(mode="json")), flow


async def _refuse_dropped_calls(store: Store, changed: RunRecord, flow: FlowConfig) -> None:
    """A sub-agent call in flight whose agent the changed flow no longer lets its
    caller call would be dropped silently: refuse the change, naming the call.
    The calls are read with the stored flow's graph (the changed one lacks the
    nodes of removed agents, so their pending tasks would not show)."""
    stored = get_run(store, changed.id)
    async with compiled_run(store, stored, reading=True) as run:
        snapshot = await run.graph.aget_state(run.config, subgraphs=True)
    assert run.flow is not None
    for call in in_flight_calls(stored, run.flow, snapshot):
        caller = flow.agents.get(call["parent"])
        if caller is not None and call["agent"] in caller.sub_agents:
            continue
        where = f"call {call['call_id']}" if call.get("call_id") else "a call"
        subtask = " ".join(str(call.get("subtask") or "").split())[:60]
        on = f" on {subtask!r}" if subtask else ""
        raise FlowError(
            f"run {changed.id}: --set removes sub-agent {call['agent']!r} from"
            f" {call['parent']!r} while {where} to it is in flight{on}; resume without"
            " that change, or after the call ends"
        )


def in_flight_calls(
    record: RunRecord, flow: FlowConfig, snapshot: StateSnapshot
) -> list[dict[str, Any]]:
    """Sub-agent calls the run's checkpoint holds unfinished: started ones (from
    their own checkpoints) and ones asked for whose sub-agent has not started."""
    calls = [
        row for row in build_report(record, flow, snapshot)["invocations"]
        if row["status"] == "running"
    ]  # fmt: skip
    started = {(row["parent"], row["agent"]) for row in calls}
    calls.extend(
        {"agent": agent, "parent": parent, "call_id": None, "subtask": None}
        for parent, agent in _asked_calls(snapshot, flow)
        if (parent, agent) not in started
    )
    return calls


def _asked_calls(snapshot: StateSnapshot, flow: FlowConfig) -> list[tuple[str, str]]:
    """(caller, sub-agent) of each pending sub-agent task, at any depth."""
    nodes = {node_name(name): name for name in flow.agents}
    caller = (snapshot.values or {}).get("agent") or flow.entry
    found = []
    for task in snapshot.tasks:
        if task.name in nodes and not isinstance(task.result, dict):
            found.append((caller, nodes[task.name]))
        if isinstance(task.state, StateSnapshot):
            found.extend(_asked_calls(task.state, flow))
    return found


def check_question_fits(entry: AgentLoop, question: str) -> None:
    """Refuse a question that cannot fit the entry agent's context with its system
    prompt, its reply budget (``max_tokens``) and the closing request, which
    repeats the question (the agent would close at once, or drop the question)."""
    if not entry.context_tokens:
        return
    tools = [*entry.tools, *(sub.tool for sub in entry.sub_agents)]
    system = prompts.system_prompt(
        today=entry.today,
        role=entry.role,
        tools=tool_specs(tools) if entry.tools_in_prompt else [],
        objective=entry.config.objective,
        template=entry.config.system_prompt_template,
    )
    task = prompts.task_message(question, role=entry.role)
    closing = prompts.closing_request(question, role=entry.role)
    # As the agent loop counts before its first call: prompt + closing reserve + reply.
    prompt = int((len(system) + len(task)) / CHARS_PER_TOKEN) + 16
    reserve = int(len(closing) / CHARS_PER_TOKEN) + 16
    reply = entry.max_tokens or 0
    needed = prompt + reserve + reply
    if needed > entry.context_tokens:
        asked = int(len(question) / CHARS_PER_TOKEN)
        raise UserInputError(
            f"the question (~{asked} tokens, {len(question)} characters) does not fit agent"
            f" {entry.name!r}: with its system prompt, max_tokens {reply} and the closing"
            f" request that repeats it, it needs ~{needed} of {entry.context_tokens}"
            " context_tokens; shorten the question (put long material in a file for a tool"
            " to read) or use a model with a larger context_tokens"
        )


async def run_report(run_id: str, *, store_url: str | None = None) -> dict[str, Any]:
    """What ``show --json`` prints: the registry row, per-agent totals, sub-agent calls."""
    async with open_store(store_url) as store:
        record = get_run(store, run_id)
        async with compiled_run(store, record, reading=True) as run:
            return await report_of(store, record, run)


async def report_of(store: Store, record: RunRecord, run: CompiledRun) -> dict[str, Any]:
    """``run_report`` of a run whose graph is compiled already (``load_transcripts``
    reads the report and the histories through one compiled graph)."""
    snapshot = await run.graph.aget_state(run.config, subgraphs=True)
    report = build_report(record, run.flow, snapshot)
    report["wall_seconds"] = round(await wall_seconds_of(store, record), 3)
    report["usage"]["wall_seconds"] = report["wall_seconds"]
    report["events"] = store.events.location(record.id)
    if run.flow is not None:
        report["warnings"] = await asyncio.to_thread(run.flow.environment_warnings)
    if run.missing_graph:
        report["warnings"] = [*report["warnings"], run.missing_graph]
    return report


def run_wall_seconds(
    record: RunRecord, *, last_event_ts: float | None = None, session_over: bool = False
) -> float:
    """Seconds the run has been running, over all its sessions.

    A session in progress counts up to now; one whose process was killed, up to
    its last event (``last_event_ts``; not given: read from this machine's event
    file; ``wall_seconds_of`` reads it from any store). ``session_over``: the
    recorded session is known to be over (a resume that holds the lease now, whose
    live lease would otherwise make the killed session count up to now).
    """
    total = record.wall_seconds
    started = record.session_started_at
    if record.status != "running" or started is None:
        return total
    if record.effective_status == "running" and not session_over:
        return total + max(0.0, time.time() - started)
    last = last_event_ts
    if last is None:
        for event in read_events(events_path(record.id)):
            last = event.get("ts", last)
    return total + max(0.0, (last or started) - started)


async def wall_seconds_of(store: Store, record: RunRecord, *, session_over: bool = False) -> float:
    """``run_wall_seconds`` with a killed session's last event read from the run's store."""
    last = None
    if record.status == "running" and (session_over or record.effective_status != "running"):
        for event in await read_all(store.events, record.id):
            last = event.get("ts", last)
        last = last or record.session_started_at
    return run_wall_seconds(record, last_event_ts=last, session_over=session_over)


# -- internals ------------------------------------------------------------------

#: ``flow_spec`` key of a run whose graph is a custom builder, not a flow file.
GRAPH_KEY = "graph"


@dataclass
class CompiledRun:
    """A run's graph compiled on the store's checkpointer, and how to invoke it."""

    graph: CompiledStateGraph
    config: dict[str, Any]
    #: The flow, or None for a custom graph.
    flow: FlowConfig | None
    #: The flow's entry agent (None for a custom graph).
    entry: AgentLoop | None = None
    #: Why a custom graph's builder could not be loaded (the graph is a read-only stand-in).
    missing_graph: str | None = None


def get_run(store: Store, run_id: str) -> RunRecord:
    """The run's registry row, or ``RunNotFoundError`` (the id is checked first)."""
    return find_run(store.registry, run_id)


@asynccontextmanager
async def holding_lease(store: Store, run_id: str) -> AsyncIterator[Lease]:
    """The run's lease for one session: taken before anything runs (``RunBusyError``
    if a live runner holds it), renewed in the background while the session runs
    (a model or tool call may last longer than the lease), given back however the
    session ends."""
    leases = store.registry.leases
    _refuse_pre_lease_runner(store, run_id)
    lease = leases.acquire(run_id)
    store.fence(lease)
    store.registry.update(run_id, pause_requested=None)  # a stale ask to a runner that died
    heartbeat = asyncio.create_task(_keep_renewing(store, lease), name=f"lease {run_id}")
    try:
        yield lease
    finally:
        heartbeat.cancel()
        store.unfence(lease)
        await _release(store, lease)


def _refuse_pre_lease_runner(store: Store, run_id: str) -> None:
    """A run last started by a version without leases has no lease row: its recorded
    process, if alive on this host, may still be running it."""
    if store.registry.leases.get(run_id) is not None:
        return
    try:
        record = store.registry.get(run_id)
    except RunNotFoundError:
        return
    if record.status == "running" and process_alive(record.pid):
        raise RunBusyError(
            f"run {run_id} is running in pid {record.pid} on this host;"
            f" `mirograph pause {run_id}` to stop it"
        )


async def _keep_renewing(store: Store, lease: Lease) -> None:
    """Renew every ``renew_every_s``; stop once the lease is lost (the pause check
    then stops the run at its next step: ``_lease_keeper``). A broken or unreachable
    store is not this task's to report: the run's own writes fail and say so."""
    leases = store.registry.leases
    while True:
        await asyncio.sleep(leases.renew_every_s)
        try:
            if await asyncio.to_thread(leases.renew, lease) is False:
                return
        except Exception as exc:
            if not (isinstance(exc, sqlite3.Error) or store.is_outage(exc)):
                raise


async def _release(store: Store, lease: Lease, attempts: int = 6) -> None:
    """Give the lease back, retrying while the store is locked: a lease left held
    blocks every resume until this process exits or its heartbeat expires. A store
    that went away cannot take it back: it frees itself once this process is gone."""
    leases = store.registry.leases
    for attempt in range(attempts):
        try:
            await asyncio.to_thread(leases.release, lease)
            return
        except Exception as exc:
            if store.is_outage(exc):
                return
            if not isinstance(exc, sqlite3.Error):
                raise
            if attempt + 1 == attempts:
                return  # expires on its own: nothing renews it any more
            await asyncio.sleep(0.5 * 2**attempt)


def _lease_keeper(store: Store, lease: Lease) -> Callable[[], str | None]:
    """The per-step pause check: a lease taken over (the background renewal found
    it gone) stops this runner like a pause."""
    registry = store.registry

    def check() -> str | None:
        return registry.step_check(lease)

    return check


@asynccontextmanager
async def compiled_run(
    store: Store, record: RunRecord, *, reading: bool = False
) -> AsyncIterator[CompiledRun]:
    """The run's graph on the store's checkpointer; model connections closed after.

    ``reading``: only to read the run's state; tools that cannot be imported here
    are left out (``show`` and ``export`` work where the run's tools do not).
    """
    workspace = run_dir(record.id) / "workspace"
    if GRAPH_KEY in record.flow_spec:
        ref = record.flow_spec[GRAPH_KEY]
        try:
            builder = load_builder(ref)
        except FlowError as exc:
            if not reading:
                raise
            # Read what is stored without the user's builder (its file moved, say).
            graph = await stand_in_graph(store.checkpointer, record.id, record.flow)
            config = _config(record.id, DEFAULT_GRAPH_STEPS)
            yield CompiledRun(graph, config, None, missing_graph=f"{exc}; shown from the store")
            return
        ctx = GraphContext(record.id, workspace, store.blobs, today=run_date(record))
        try:
            compiled = builder(ctx).compile(checkpointer=store.checkpointer, name=record.flow)
            make_workspace(workspace)
            if not reading:
                await restore_workspace(store, record.id, workspace)
            yield CompiledRun(compiled, _config(record.id, ctx.recursion_limit), None)
        finally:
            await ctx.aclose()
        return
    flow = validate_flow(record.flow_spec, source=f"run {record.id}", import_tools=not reading)
    tools = ToolContext(run_id=record.id, workspace=workspace)
    built = build_flow_graph(flow, tools, store.blobs, reading=reading, today=run_date(record))
    try:
        compiled = built.graph.compile(checkpointer=store.checkpointer, name=flow.name)
        make_workspace(workspace)
        if not reading:  # the files its tools wrote, where a session elsewhere left them
            await restore_workspace(store, record.id, workspace)
        config = _config(record.id, flow_recursion_limit(flow))
        config["max_concurrency"] = flow.max_parallel
        entry = next((agent for agent in built.agents if agent.name == flow.entry), None)
        yield CompiledRun(compiled, config, flow, entry)
    finally:
        await built.aclose()


def run_date(record: RunRecord) -> str:
    """The date a run's system prompts state: the day it was created, where it was
    (stored with it), kept for its whole life: a sub-agent first started after a
    resume on a later day, or on a machine in another time zone, is told the same
    date as the agents before it. A run stored before the date was: its creation
    time's local date here."""
    if record.run_date:
        return record.run_date
    created = datetime.fromtimestamp(record.created_at) if record.created_at else datetime.now()
    return created.date().isoformat()


def make_workspace(workspace: Path) -> None:
    """The run's sandbox workspace, or one line saying why it cannot be made."""
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(
            f"cannot create the run's workspace {workspace} ({exc.strerror or exc});"
            " set MIROGRAPH_HOME to a writable folder"
        ) from None


def _config(run_id: str, limit: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": run_id}, "recursion_limit": limit}


async def _execute(
    store: Store,
    record: RunRecord,
    graph_input: dict[str, Any] | None,
    run: CompiledRun,
    control: RunControl | None,
    lease: Lease,
) -> RunOutcome:
    run_id, graph, config = record.id, run.graph, run.config
    control = control or RunControl()
    # The recorded session is over: this one holds the lease now. A killed one counts
    # up to its last event, not up to this resume (the time it lay dead is no run time).
    wall_before = await wall_seconds_of(store, record, session_over=True)
    tokens_before = 0
    # Where a resumed run stands: what it spent (budgets count it) and its calls.
    so_far: dict[str, Any] = {}
    if graph_input is None:
        totals = build_report(record, run.flow, await graph.aget_state(config, subgraphs=True))
        tokens_before = totals["usage"]["prompt_tokens"] + totals["usage"]["completion_tokens"]
        counted = ("model_calls", "tool_calls", "cached_tokens")
        so_far = {
            "usage": {k: totals["usage"][k] for k in counted},
            "calls": [
                {k: row[k] for k in ("agent", "status", "turns", "checkpoint_ns")}
                for row in totals["invocations"]
            ],
        }
    budgets = Budgets(run.flow.max_tokens_total, run.flow.max_wall_seconds) if run.flow else None
    control.begin(
        run_id,
        budgets=budgets,
        tokens_before=tokens_before,
        wall_before=wall_before,
        pause_check=_lease_keeper(store, lease),
    )
    # First: a log that cannot open leaves the row as it was.
    events = RunEvents(run_id, await store.events.writer(run_id, lease), publisher(redis_url()))
    files = await syncing_workspace(store, run_id, run_dir(run_id) / "workspace", lease)
    store.registry.update(
        run_id,
        lease=lease,
        status="running",
        reason=None,
        pid=os.getpid(),
        wall_seconds=wall_before,
        session_started_at=time.time(),
    )
    control.add_sink(events)
    if files is not None:
        control.add_sink(files)
    control.emit(
        "run_resumed" if graph_input is None else "run_started",
        question=record.question,
        flow=record.flow,
        entry=run.flow.entry if run.flow else None,
        # What the run had spent when the session started: a watcher's clock and counts.
        wall_seconds=round(control.wall_seconds, 3),
        tokens=control.tokens,
        **so_far,
    )
    try:
        return await _invoke(store, record, graph_input, run, control, lease)
    finally:
        control.remove_sink(events)
        try:
            if files is not None:
                control.remove_sink(files)
                await files.aclose()
        finally:
            await events.aclose()


async def _invoke(
    store: Store,
    record: RunRecord,
    graph_input: dict[str, Any] | None,
    run: CompiledRun,
    control: RunControl,
    lease: Lease,
) -> RunOutcome:
    run_id, graph, config = record.id, run.graph, run.config
    end = functools.partial(_end_session, store, record, run, control, lease)
    try:
        with controlling(control):
            await graph.ainvoke(graph_input, config, durability="sync")
    except (ModelUnavailableError, PauseRequested) as exc:
        store.discard_uncommitted()
        if isinstance(exc, PauseRequested):
            reason = control.pause_reason or "pause requested"
        else:
            reason = redact(str(exc))
        await end(status="paused", reason=reason)
        return RunOutcome(run_id, "paused", None, reason)
    except RunBusyError:
        # Taken over (a checkpoint write refused by the lease's fence, LeaseLostError):
        # the new holder owns the run and its row, so this session records nothing.
        store.discard_uncommitted()
        control.end_session()
        raise
    except BaseException as exc:
        # An interrupted step may hold an open write (its blobs) that would
        # lock the registry's row update: it was never checkpointed, drop it.
        store.discard_uncommitted()
        if store.is_outage(exc):
            raise await _store_lost(store, run_id, exc, end) from exc
        reason = redact(describe(exc))
        interrupted = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)
        status = "paused" if isinstance(exc, interrupted) else "failed"
        if status == "paused":
            asked = " after Ctrl-C twice" if control.pause_reason == "paused by Ctrl-C" else ""
            reason = f"stopped at once{asked}; the step in flight runs again on resume"
        await end(status=status, reason=reason)
        if status == "failed":
            raise RunFailedError(
                f"run {run_id} stopped: {reason}; fix the cause, then `mirograph resume {run_id}`"
            ) from exc
        raise
    snapshot = await graph.aget_state(config)
    answer = snapshot.values.get("answer")
    if answer is None or not str(answer).strip():
        reason = _no_answer_reason(snapshot.values, run)
        await end(status="no_answer", reason=reason, answer=answer)
        return RunOutcome(run_id, "no_answer", answer, reason)
    await end(status="completed", answer=answer)
    return RunOutcome(run_id, "completed", answer, None)


#: How long a run whose store went away waits to record its end before it exits.
STORE_BACK_S = 2.0


async def _store_lost(
    store: Store, run_id: str, exc: BaseException, end: Callable[..., Any]
) -> StoreUnavailableError:
    """The error for a run whose store went away mid-step: its last checkpoint is
    where it resumes. The session's end is recorded if the store is back already;
    else the run reads as paused once this process has gone (its lease is dead)."""
    reason = f"the run store went away ({first_line(describe(exc))})"
    with contextlib.suppress(Exception):  # a store still away: the lease frees the run
        async with asyncio.timeout(STORE_BACK_S):
            await end(status="paused", reason=reason)
    return StoreUnavailableError(
        f"the run store {shown_url(store.url)} went away ({first_line(describe(exc))});"
        f" run {run_id} stopped at its last checkpoint: `mirograph resume {run_id}`"
        " once the store is back"
    )


def _no_answer_reason(values: dict[str, Any], run: CompiledRun) -> str:
    """Why the graph ended without an answer: its entry agent's stop reason."""
    agent = values.get("agent") or (run.flow.entry if run.flow else "graph")
    stop = values.get("stop_reason") or "unknown"
    return f"the {agent} agent ended without a boxed answer (stop reason: {stop})"


async def _end_session(
    store: Store,
    record: RunRecord,
    run: CompiledRun,
    control: RunControl,
    lease: Lease,
    *,
    status: str,
    reason: str | None = None,
    answer: str | None = None,
) -> None:
    """Record how the session ended: status, running time, usage so far, one event."""
    fields: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "wall_seconds": control.wall_seconds,
        "pause_requested": None,
    }
    if status in ENDED:
        fields["answer"] = answer
    try:
        snapshot = await run.graph.aget_state(run.config, subgraphs=True)
        fields["usage"] = build_report(record, run.flow, snapshot)["agents"]
    except Exception:  # a store too broken to read keeps the usage it had
        pass
    try:
        store.registry.update(record.id, lease=lease, **fields)  # refused if taken over
    finally:
        control.end_session()
    control.emit(
        f"run_{status}",
        reason=reason,
        answer=answer,
        wall_seconds=round(control.wall_seconds, 3),
        tokens=control.tokens,
    )
