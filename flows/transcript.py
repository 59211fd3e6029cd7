"""Every agent call of a run with its full history: what ``show`` and ``export`` read.

The report says which agent calls a run made and where each one checkpointed
its history (``checkpoint_ns``). This module reads each history back from its
namespace and restores long tool results from the blob store, so a transcript
holds every turn of every agent as stored. Keep-K omission only ever applies
to what a model is shown, never to the store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from mirograph.agents.prompts import FAILURE_SUMMARY_REQUEST
from mirograph.flows.runner import CompiledRun, compiled_run, get_run, open_store, report_of
from mirograph.graphs.config import FlowConfig
from mirograph.state.blobs import BlobStore, MissingBlobError, blob_key, hydrate
from mirograph.state.schema import empty_stats
from mirograph.state.store import Store

#: Blobs read per query (SQLite bounds the parameters of one statement).
BLOB_BATCH = 400


@dataclass
class AgentCall:
    """One agent call: the entry agent, or one call of a sub-agent (or of a custom graph)."""

    #: ``planner`` for the entry agent, ``<agent>#<k>`` for the k-th call of a sub-agent.
    label: str
    agent: str
    #: Label of the calling agent's call; None for the entry agent and a custom graph's agents.
    parent: str | None
    depth: int
    call_id: str | None
    subtask: str | None
    #: ``completed``, ``failed``, or ``running`` (in flight when the run stopped).
    status: str
    stop_reason: str | None
    stats: dict[str, Any]
    checkpoint_ns: str
    #: The full stored history, long tool results restored.
    messages: list[BaseMessage] = field(default_factory=list)
    #: ``mirothinker`` (tools in the prompt, calls in the text) or ``native``.
    protocol: str = "mirothinker"
    #: The parent's reply that made this call (``Turn.number``: its k-th stored reply,
    #: over all its attempts), and the call's place in that reply.
    parent_turn: int | None = None
    parent_call_index: int | None = None


@dataclass
class RunTranscript:
    """A run's report (as ``show --json`` prints it) and its agent calls in call order."""

    report: dict[str, Any]
    calls: list[AgentCall]
    #: The run's flow; None for a custom graph.
    flow: FlowConfig | None = None

    def children(self, label: str | None) -> list[AgentCall]:
        """The calls made by call ``label`` (None: a custom graph's own agent calls)."""
        return [call for call in self.calls if call.parent == label]


@dataclass
class Turn:
    """One model reply of an agent and the tool results that answered it."""

    #: 1-based, counting every stored reply of the history (closing and summary
    #: replies included, over all attempts): the index ``AgentCall.parent_turn`` uses.
    number: int
    reply: AIMessage
    results: list[ToolMessage] = field(default_factory=list)
    #: The reply to the closing request (summary or report, no tools).
    closing: bool = False
    #: The reply to the failure-summary request that ends a failed attempt.
    summary: bool = False
    #: The attempt this reply belongs to (1 unless the agent restarted).
    attempt: int = 1
    #: 1-based within its attempt: what ``show`` prints and ``export`` calls ``turn``.
    in_attempt: int = 0

    def __post_init__(self) -> None:
        self.in_attempt = self.in_attempt or self.number


@dataclass(frozen=True)
class Place:
    """Where a message sits: its attempt, its turn within the attempt (0 for the
    system prompt and the task; a request belongs to the reply it asks for) and
    its phase: None while the agent works, ``close`` for the closing request and
    its reply, ``summary`` for the failure-summary request and its reply."""

    attempt: int
    turn: int
    phase: str | None = None


def message_places(messages: Sequence[BaseMessage]) -> list[Place]:
    """The place of each message of a history.

    An attempt opens with a system prompt and its task; a later user message is
    the request for a summary of the failed attempt (restarts with
    ``restart_summary``; known by its text) or else the closing request (an
    attempt whose turns ran out while it could restart has none). A system prompt
    after a task begins the next attempt (a restart), its turns counted afresh.
    """
    places: list[Place] = []
    attempt, replies, seen_task, phase = 1, 0, False, None
    for message in messages:
        if isinstance(message, SystemMessage) and seen_task:
            attempt, replies, seen_task, phase = attempt + 1, 0, False, None
        if isinstance(message, AIMessage):
            replies += 1
            places.append(Place(attempt, replies, phase))
        elif isinstance(message, HumanMessage):
            if not seen_task:
                seen_task = True
                places.append(Place(attempt, 0))
                continue
            phase = "summary" if message.text == FAILURE_SUMMARY_REQUEST else "close"
            places.append(Place(attempt, replies + 1, phase))
        elif isinstance(message, SystemMessage):
            places.append(Place(attempt, 0))
        else:
            places.append(Place(attempt, replies))
    return places


def turns_of(messages: Sequence[BaseMessage]) -> list[Turn]:
    """The replies of a history with their results, in order."""
    turns: list[Turn] = []
    for message, place in zip(messages, message_places(messages), strict=True):
        if isinstance(message, AIMessage):
            turn = Turn(len(turns) + 1, message, attempt=place.attempt, in_attempt=place.turn)
            turn.closing, turn.summary = place.phase == "close", place.phase == "summary"
            turns.append(turn)
        elif isinstance(message, ToolMessage) and turns:
            turns[-1].results.append(message)
    return turns


def message_turns(messages: Sequence[BaseMessage]) -> list[int]:
    """The turn of each message within its attempt: 0 for the system prompt and the
    task, ``k`` for the k-th reply and its results; a closing (or summary) request
    belongs to the reply it asks for."""
    return [place.turn for place in message_places(messages)]


def closing_indices(messages: Sequence[BaseMessage]) -> set[int]:
    """Indices of each attempt's closing request and the reply to it."""
    return {i for i, place in enumerate(message_places(messages)) if place.phase == "close"}


def summary_indices(messages: Sequence[BaseMessage]) -> set[int]:
    """Indices of each failure-summary request and the reply to it."""
    return {i for i, place in enumerate(message_places(messages)) if place.phase == "summary"}


def attempt_slices(messages: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """The history cut into its attempts, in order (one for an agent that never
    restarted); the summary exchange ends the attempt it summarises."""
    slices: list[list[BaseMessage]] = []
    for message, place in zip(messages, message_places(messages), strict=True):
        while len(slices) < place.attempt:
            slices.append([])
        slices[place.attempt - 1].append(message)
    return slices


async def load_transcripts(
    run_id: str,
    *,
    store_url: str | None = None,
    store: Store | None = None,
    hydrate: bool = True,
) -> RunTranscript:
    """The run's report and every agent call with its full history, in call order.

    Works for completed, paused, failed and killed runs: a call in flight when
    the run stopped is read from its last checkpoint and reported ``running``.
    ``store``: one open already (the web view's), else ``store_url`` is opened.
    ``hydrate=False`` leaves long tool results as their previews (``hydrated``
    restores those a reader asks for).
    """
    async with nullcontext(store) if store is not None else open_store(store_url) as opened:
        record = get_run(opened, run_id)
        async with compiled_run(opened, record, reading=True) as run:
            report = await report_of(opened, record, run)
            top = (await run.graph.aget_state(run.config)).values or {}
            calls: list[AgentCall] = []
            if run.flow is not None and (top or report["status"] != "queued"):
                # a queued run has no agent yet: no worker has started it
                calls.append(_entry_call(report, run.flow, top))
            for row in report["invocations"]:
                calls.append(await _sub_call(run, run_id, row))
            if hydrate:
                for call in calls:
                    call.messages = await hydrated(call.messages, opened.blobs)
    for call in calls:
        if call.protocol == "auto":
            call.protocol = _detected_protocol(call.messages)
    return RunTranscript(report, _in_call_order(calls), run.flow)


# -- reading the calls ------------------------------------------------------------


def _entry_call(report: dict[str, Any], flow: FlowConfig, values: dict[str, Any]) -> AgentCall:
    if values.get("phase") == "done":
        status = "completed"
    else:
        status = "failed" if report["status"] == "failed" else "running"
    name = values.get("agent") or flow.entry
    return AgentCall(
        label=name,
        agent=name,
        parent=None,
        depth=0,
        call_id=None,
        subtask=report["question"],
        status=status,
        stop_reason=values.get("stop_reason"),
        stats={**empty_stats(), **(values.get("stats") or {})},
        checkpoint_ns="",
        messages=list(values.get("messages") or ()),
        protocol=_flow_protocol(flow, name),
    )


async def _sub_call(run: CompiledRun, run_id: str, row: dict[str, Any]) -> AgentCall:
    ns = row.get("checkpoint_ns") or ""
    values: dict[str, Any] = {}
    if ns:
        config = {"configurable": {"thread_id": run_id, "checkpoint_ns": ns}}
        try:
            values = (await run.graph.aget_state(config)).values or {}
        except ValueError:  # the graph no longer has that subgraph: report it without history
            values = {}
    stats = {**empty_stats(), **{k: v for k, v in row.items() if k in empty_stats()}}
    stats.update(values.get("stats") or {})
    protocol = _flow_protocol(run.flow, row["agent"]) if run.flow is not None else "auto"
    return AgentCall(
        label=row["agent"],  # numbered once the calls are in order
        agent=row["agent"],
        parent=row.get("parent"),  # an agent name until linked to its call
        depth=row.get("depth") or 1,
        call_id=row.get("call_id"),
        subtask=row.get("subtask"),
        status=row.get("status") or "running",
        stop_reason=row.get("stop_reason"),
        stats=stats,
        checkpoint_ns=ns,
        messages=list(values.get("messages") or ()),
        protocol=protocol,
    )


def _flow_protocol(flow: FlowConfig | None, agent: str) -> str:
    if flow is None or agent not in flow.agents:
        return "auto"
    return flow.models[flow.agents[agent].model].protocol


def _detected_protocol(messages: Sequence[BaseMessage]) -> str:
    """A custom graph's agent: MiroThinker replies carry the parser's metadata."""
    for message in messages:
        if isinstance(message, AIMessage):
            return "mirothinker" if "stray_tags" in message.response_metadata else "native"
    return "mirothinker"


async def hydrated(messages: list[BaseMessage], blobs: BlobStore) -> list[BaseMessage]:
    """The history with every offloaded result read back, in batches; a blob the store
    lost (a step rolled back after writing it) keeps its preview."""
    wanted = [i for i, m in enumerate(messages) if blob_key(m) is not None]
    for start in range(0, len(wanted), BLOB_BATCH):
        batch = wanted[start : start + BLOB_BATCH]
        try:
            messages = await hydrate(messages, blobs, only=batch)
        except MissingBlobError:
            for i in batch:
                try:
                    messages = await hydrate(messages, blobs, only=[i])
                except MissingBlobError:
                    continue
    return messages


# -- call order and labels ----------------------------------------------------------


def _in_call_order(calls: list[AgentCall]) -> list[AgentCall]:
    """Calls depth first, each call's children in the order its replies made them;
    labels numbered per agent in that order, parents given as labels."""
    entry = calls[0] if calls and calls[0].depth == 0 else None
    by_ns = {call.checkpoint_ns: call for call in calls if call.checkpoint_ns or call is entry}
    parent_of: dict[int, AgentCall | None] = {}
    for i, call in enumerate(calls):
        if call is entry:
            continue
        parent_of[id(call)] = _parent(call, calls[:i], by_ns, entry)
    for call in calls:
        parent = parent_of.get(id(call))
        if parent is not None:
            _place(call, parent)
    position = {id(call): i for i, call in enumerate(calls)}

    def key(call: AgentCall) -> tuple[float, float, int]:
        turn = math.inf if call.parent_turn is None else call.parent_turn
        index = math.inf if call.parent_call_index is None else call.parent_call_index
        return (turn, index, position[id(call)])

    ordered: list[AgentCall] = []

    def visit(parent: AgentCall | None) -> None:
        children = [c for c in calls if c is not entry and parent_of.get(id(c)) is parent]
        for child in sorted(children, key=key):
            ordered.append(child)
            visit(child)

    if entry is not None:
        ordered.append(entry)
        visit(entry)
    visit(None)
    counts: dict[str, int] = {}
    for call in ordered:
        if call is entry:
            continue
        counts[call.agent] = counts.get(call.agent, 0) + 1
        call.label = f"{call.agent}#{counts[call.agent]}"
    for call in ordered:
        if call is not entry:
            parent = parent_of.get(id(call))
            call.parent = parent.label if parent is not None else None
    return ordered


def _parent(
    call: AgentCall,
    before: list[AgentCall],
    by_ns: dict[str, AgentCall],
    entry: AgentCall | None,
) -> AgentCall | None:
    """The call that made ``call``: by namespace (a nested call's namespace extends its
    caller's), else the nearest earlier call one level up, else the entry agent."""
    if call.checkpoint_ns:
        parent_ns = call.checkpoint_ns.rpartition("|")[0]
        if parent_ns in by_ns:
            return by_ns[parent_ns]
    for candidate in reversed(before):
        if candidate.depth == call.depth - 1 and candidate.agent == call.parent:
            return candidate
    return entry if call.depth <= 1 else None


def _place(call: AgentCall, parent: AgentCall) -> None:
    """Find the parent's reply that made ``call`` (by call id, or by sub-task for a
    call still in flight, whose id the report does not know)."""
    replies = [m for m in parent.messages if isinstance(m, AIMessage)]
    for number in range(len(replies), 0, -1):
        for index, tool_call in enumerate(replies[number - 1].tool_calls):
            same_id = call.call_id is not None and tool_call.get("id") == call.call_id
            same_task = (
                call.call_id is None
                and (tool_call.get("args") or {}).get("subtask") == call.subtask
            )
            if same_id or same_task:
                call.parent_turn, call.parent_call_index = number, index
                call.call_id = call.call_id or tool_call.get("id")
                return
