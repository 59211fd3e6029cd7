"""A run as its web page shows it, built from what ``show`` reads and from its events.

The summary (``RunView.summary``) holds everything a first look needs, small
whatever the run's length: the run, the agent tree (every call with its status,
turns, tokens and time), the timeline of calls and sessions, and the tokens of
every turn. Turns come a page at a time (``turn_page``), each tool result cut to
a preview whose full text is asked for on its own (``result_text``): a 600-turn
run's page never holds 600 turns of text. ``RunViews`` keeps the last view of
each run and reads the store again only when the run moved on (its row or its
events changed), at most every ``REFRESH_S`` while it runs (a request that comes
sooner waits for that reading: a page is never answered with an older one).

Every text leaves here with secrets masked (``scrub``); the page puts it in the
document as text, never as markup.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage

from mirograph.agents.mirothinker.parsing import parse_reply
from mirograph.agents.mirothinker.thinking import split_thinking
from mirograph.flows.export import usage_of
from mirograph.flows.runs import find_run
from mirograph.flows.transcript import (
    AgentCall,
    RunTranscript,
    Turn,
    hydrated,
    load_transcripts,
    turns_of,
)
from mirograph.flows.watch import SESSION_ENDS
from mirograph.state.blobs import BlobStore
from mirograph.state.events import READ_LIMIT
from mirograph.state.redact import scrub
from mirograph.state.registry import RunRecord
from mirograph.state.store import Store

#: Turns in one page of an agent call.
PAGE_TURNS = 50
#: Characters of a tool result shown before its full text is asked for.
PREVIEW_CHARS = 2000
#: Seconds a live run's view is kept before its store is read again.
REFRESH_S = 0.4
#: Seconds after new events within which a live run's checkpoint may still follow them.
SETTLE_S = 1.0
#: Runs whose views are kept.
KEPT_VIEWS = 8
#: Events that mark a turn: a rollback, a retried or cut model call, a budget reached.
NOTED = frozenset({"turn_rolled_back", "model_call", "budget_reached"})


class NoSuchCall(LookupError):
    """A call label, turn or result the run does not have (the API's 404)."""


@dataclass
class RunView:
    """One reading of a run: its transcript and its events up to ``seq``."""

    transcript: RunTranscript
    events: list[dict[str, Any]]
    seq: int
    #: What the registry said when it was read (status and last update).
    stamp: tuple[Any, ...]
    #: When the reading began (monotonic): it holds what was stored then, at least.
    read_at: float = field(default_factory=time.monotonic)
    #: When the reading that loaded ``transcript`` began (``read_at`` moves on when
    #: a later look finds nothing new).
    loaded_from: float = field(default_factory=time.monotonic)
    #: When the reading ended: a live run's next one is at least ``REFRESH_S`` later.
    loaded_at: float = field(default_factory=time.monotonic)
    #: When the reading that first saw its newest events began.
    moved_at: float = field(default_factory=time.monotonic)
    turns: dict[str, list[Turn]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.turns = {call.label: turns_of(call.messages) for call in self.transcript.calls}
        self._calls = {call.label: call for call in self.transcript.calls}
        self._labels = {call.checkpoint_ns: call.label for call in self.transcript.calls}

    def settled(self, stamp: tuple[Any, ...]) -> bool:
        """Whether this reading still holds what the store holds when no event came
        since. An event is told a moment before its step's checkpoint is written
        (a model reply, a tool result): a running run read within ``SETTLE_S`` of
        new events is read again, else the step written just after them would be
        missing until the next event (minutes, during a long tool call)."""
        return stamp[0] != "running" or self.loaded_from - self.moved_at >= SETTLE_S

    def call(self, label: str) -> AgentCall:
        try:
            return self._calls[label]
        except KeyError:
            raise NoSuchCall(f"run has no agent call {label!r}") from None

    # -- the summary ------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        report = self.transcript.report
        run = {
            key: report.get(key)
            for key in (
                "id",
                "question",
                "flow",
                "status",
                "reason",
                "answer",
                "stop_reason",
                "created_at",
                "updated_at",
                "wall_seconds",
                "usage",
                "warnings",
                "attempts",
            )
        }
        return scrub(
            {
                "run": run,
                "seq": self.seq,
                "calls": [self._call_row(call) for call in self.transcript.calls],
                "timeline": self._timeline(),
                "tokens": {
                    label: [_turn_tokens(turn) for turn in turns]
                    for label, turns in self.turns.items()
                },
                "page_turns": PAGE_TURNS,
            }
        )

    def _call_row(self, call: AgentCall) -> dict[str, Any]:
        stats = call.stats
        return {
            "label": call.label,
            "agent": call.agent,
            "parent": call.parent,
            "depth": call.depth,
            "status": call.status,
            "stop_reason": call.stop_reason,
            "subtask": call.subtask,
            "ns": call.checkpoint_ns,
            "parent_turn": call.parent_turn,
            # model replies stored, the closing one included (what the turns pages hold)
            "replies": len(self.turns[call.label]),
            **{
                key: stats.get(key, 0)
                for key in (
                    "turns",
                    "tool_calls",
                    "rollbacks",
                    "retries",
                    "prompt_tokens",
                    "completion_tokens",
                    "cached_tokens",
                    "wall_seconds",
                )
            },
        }

    def _timeline(self) -> dict[str, Any]:
        """Sessions of the run (start, end, how each ended, its last event) and the
        spans of each call. A session whose process was killed wrote no end: it is
        shown ending at its last event (``last``), not running on until the next
        session began or until now, however long the run lay dead."""
        sessions: list[dict[str, Any]] = []
        spans: dict[str, list[list[float | None]]] = {}
        for event in self.events:
            name, ts = event.get("event"), event.get("ts")
            if not isinstance(ts, int | float):
                continue
            if name in ("run_started", "run_resumed"):
                if sessions:
                    _close_open(sessions, spans, sessions[-1]["last"], "stopped")
                sessions.append(
                    {"start": ts, "end": None, "ended": None, "reason": None, "last": ts}
                )
                continue
            if sessions:
                sessions[-1]["last"] = ts
            if name in SESSION_ENDS and sessions:
                _close_open(sessions, spans, ts, name, event.get("reason"))
            elif name in ("agent_started", "agent_finished"):
                label = self._labels.get(event.get("ns") or "")
                if label is None or not event.get("ns"):
                    continue
                own = spans.setdefault(label, [])
                if name == "agent_started":
                    own.append([ts, None])
                elif own and own[-1][1] is None:
                    own[-1][1] = ts
        if sessions and sessions[-1]["end"] is None and self.stamp[0] != "running":
            # killed and not resumed yet: nothing runs; its calls stopped with it
            for own in spans.values():
                if own and own[-1][1] is None:
                    own[-1][1] = sessions[-1]["last"]
        running = self.stamp[0] == "running"
        entry = [[s["start"], s["end"] or (None if running else s["last"])] for s in sessions]
        for call in self.transcript.calls:
            if not call.checkpoint_ns:
                spans[call.label] = entry
        return {"sessions": sessions, "spans": spans, "now": time.time()}

    # -- turns ----------------------------------------------------------------------

    async def turn_page(
        self, label: str, offset: int, limit: int, blobs: BlobStore
    ) -> dict[str, Any]:
        """A page of the call's turns, their long results read back from ``blobs``."""
        call = self.call(label)
        turns = self.turns[label]
        notes = self._notes(call.checkpoint_ns)
        children = {
            (child.parent_turn, child.parent_call_index): child.label
            for child in self.transcript.children(label)
        }
        page = turns[max(offset, 0) : max(offset, 0) + max(1, min(limit, PAGE_TURNS * 4))]
        results = [result for turn in page for result in turn.results]
        restored = await hydrated(results, blobs)
        texts = {id(result): full.text for result, full in zip(results, restored, strict=True)}
        return scrub(
            {
                "label": label,
                "status": call.status,
                "total": len(turns),
                "offset": max(offset, 0),
                "seq": self.seq,
                "protocol": call.protocol,
                "turns": [_turn_row(turn, notes, children, call.protocol, texts) for turn in page],
            }
        )

    async def result_text(self, label: str, number: int, index: int, blobs: BlobStore) -> str:
        turns = self.turns[self.call(label).label]
        if not 1 <= number <= len(turns) or not 0 <= index < len(turns[number - 1].results):
            raise NoSuchCall(f"{label!r} has no result {index} in turn {number}")
        (full,) = await hydrated([turns[number - 1].results[index]], blobs)
        return await asyncio.to_thread(scrub, full.text)  # up to max_result_chars long

    def _notes(self, ns: str) -> dict[tuple[int, int], list[str]]:
        """What the events tell of each turn (by its attempt and its number in that
        attempt) that the stored history does not: rollbacks, retried and cut model
        calls, budgets. Events number a turn within its attempt; the attempt is the
        one the agent's last ``restarted`` event began (1 before any)."""
        notes: dict[tuple[int, int], list[str]] = {}
        attempt = 1
        for event in self.events:
            name = event.get("event")
            if (event.get("ns") or "") != ns:
                continue
            if name == "restarted" and isinstance(event.get("attempt"), int):
                attempt = event["attempt"]
                continue
            turn = event.get("turn")
            if name not in NOTED or not isinstance(turn, int):
                continue
            if name == "turn_rolled_back":
                text = f"rolled back: {event.get('reason')}"
            elif name == "budget_reached":
                text = f"budget reached: {event.get('budget')}"
            elif event.get("outcome") not in (None, "ok"):
                detail = event.get("detail")
                text = f"model call {event.get('outcome')}" + (f": {detail}" if detail else "")
            else:
                continue
            notes.setdefault((attempt, turn), []).append(text)
        return notes


def _close_open(
    sessions: list[dict[str, Any]],
    spans: dict[str, list[list[float | None]]],
    ts: float,
    ended: str,
    reason: Any = None,
) -> None:
    """Ends the open session (and the call spans still open in it) at ``ts``."""
    if sessions and sessions[-1]["end"] is None:
        sessions[-1].update(end=ts, ended=ended, reason=reason)
        for own in spans.values():
            if own and own[-1][1] is None:
                own[-1][1] = ts


def _turn_tokens(turn: Turn) -> list[int]:
    usage = usage_of(turn.reply) or {}
    return [
        turn.number,
        usage.get("prompt_tokens", 0),
        usage.get("cached_tokens", 0),
        usage.get("completion_tokens", 0),
    ]


def _turn_row(
    turn: Turn,
    notes: dict[tuple[int, int], list[str]],
    children: dict[tuple[int | None, int | None], str],
    protocol: str,
    texts: dict[int, str],
) -> dict[str, Any]:
    reply = turn.reply
    thinking, visible = split_thinking(reply.text)
    if not thinking and turn.summary and visible.startswith("<think>"):
        thinking, visible = visible.removeprefix("<think>"), ""
    if protocol != "native" and not (turn.closing or turn.summary):
        visible = parse_reply(visible).content
    results = {r.tool_call_id: i for i, r in enumerate(turn.results)}
    calls = []
    for index, call in enumerate(_calls_of(reply)):
        at = results.pop(call.get("id") or "", None)
        calls.append(
            {
                "name": call.get("name") or "?",
                "args": call.get("args"),
                "invalid": call.get("invalid", False),
                "sub": children.get((turn.number, index)),
                "result": _result_row(turn.results[at], at, texts) if at is not None else None,
            }
        )
    return {
        "n": turn.number,
        "attempt": turn.attempt,
        "in_attempt": turn.in_attempt,
        "closing": turn.closing,
        "summary": turn.summary,
        "thinking": thinking,
        "text": visible.strip(),
        "calls": calls,
        # results no call of this reply asked for (a tool error, say)
        "other_results": [_result_row(turn.results[i], i, texts) for i in sorted(results.values())],
        "usage": usage_of(reply),
        "notes": notes.get((turn.attempt, turn.in_attempt), []),
    }


def _calls_of(reply: AIMessage) -> list[dict[str, Any]]:
    found = [dict(c) for c in reply.tool_calls]
    for bad in reply.invalid_tool_calls:
        args = bad.get("args")
        found.append({**bad, "args": _loads(args), "invalid": True})
    return found


def _loads(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return args


def _result_row(result: ToolMessage, index: int, texts: dict[int, str]) -> dict[str, Any]:
    text = texts.get(id(result), result.text)
    return {
        "index": index,
        "chars": len(text),
        # masked before it is cut: a secret across the cut would keep its first part
        "preview": scrub(text)[:PREVIEW_CHARS],
        "error": result.status == "error",
    }


class RunViews:
    """The views of the runs being looked at, read again only when a run moved on."""

    def __init__(self, store: Store, store_url: str | None) -> None:
        self.store = store
        self.store_url = store_url
        self._views: OrderedDict[str, RunView] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def record(self, run_id: str) -> RunRecord:
        """The run's registry row (``RunNotFoundError`` for a run not in the store)."""
        return find_run(self.store.registry, run_id)

    async def get(self, run_id: str, seen: int | None = None) -> RunView:
        """The run's view, as fresh as a live run allows. ``seen``: the ``seq`` of the
        summary the asker holds; a view that has read that far answers at once (a
        page of turns asked right after its summary comes from the same reading, not
        from another one a throttle's wait later)."""
        asked = time.monotonic()
        self.record(run_id)  # a run not in the store: at once, not after the others
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        async with lock:
            cached = self._views.get(run_id)
            if cached is not None and seen is not None and cached.seq >= seen:
                return self._kept(run_id, cached)
            if cached is not None and cached.read_at >= asked:
                # read since this request came (while it waited for the lock): not
                # older than it asked for; each waiter reading again queued them
                # REFRESH_S apart (ten pages on a live run: the tenth waited 4 s)
                return self._kept(run_id, cached)
            record = self.record(run_id)
            if cached is not None and record.effective_status == "running":
                # a live run is read at most every REFRESH_S: a request that comes
                # sooner waits for the next reading, never gets an older one
                wait = REFRESH_S - (time.monotonic() - cached.loaded_at)
                if wait > 0:
                    await asyncio.sleep(wait)
                    record = self.record(run_id)
            began = time.monotonic()
            stamp = (record.effective_status, record.updated_at)
            fresh = await self._events(run_id, cached.seq if cached else 0)
            if cached is not None:
                if not fresh and cached.stamp == stamp and cached.settled(stamp):
                    cached.read_at = began
                    return self._kept(run_id, cached)
                events = cached.events + [event for _, event in fresh]
            else:
                events = [event for _, event in fresh]
            seq = fresh[-1][0] if fresh else (cached.seq if cached else 0)
            # long results stay previews here; a page of turns reads back its own
            transcript = await load_transcripts(run_id, store=self.store, hydrate=False)
            moved_at = began if fresh or cached is None else cached.moved_at
            view = RunView(
                transcript, events, seq, stamp, read_at=began, loaded_from=began, moved_at=moved_at
            )
            return self._kept(run_id, view)

    def _kept(self, run_id: str, view: RunView) -> RunView:
        self._views[run_id] = view
        self._views.move_to_end(run_id)
        while len(self._views) > KEPT_VIEWS:
            gone, _ = self._views.popitem(last=False)
            lock = self._locks.get(gone)
            if lock is not None and not lock.locked():
                del self._locks[gone]
        return view

    async def _events(self, run_id: str, after: int) -> list[tuple[int, dict[str, Any]]]:
        found: list[tuple[int, dict[str, Any]]] = []
        while True:
            batch = await self.store.events.read(run_id, after)
            found.extend(batch)
            if len(batch) < READ_LIMIT:
                return found
            after = batch[-1][0]
