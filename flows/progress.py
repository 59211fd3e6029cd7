"""Live progress of a run on a terminal, drawn from the run's events.

A panel at the bottom shows the run's running time, tokens and calls so far,
and each agent at work as a path (``planner › browsing#2``) with its turn out
of its budget and its last tool call. Above it, agent calls, tool calls and
anything unusual (rollbacks, errors, budgets) scroll by as structlog lines.
Every text an event carries (tool arguments and results, sub-tasks, agent
names) is made ``printable`` as it arrives: it was written by a model or a web
page, and must not drive the terminal.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mirograph.flows.terminal import printable
from mirograph.graphs.run_control import RunControl

SEP = " › "


@dataclass
class _Agent:
    label: str
    turn: int = 0
    max_turns: int | None = None
    last: str = ""
    done: bool = False
    #: The attempt in progress, once the agent has restarted (1: never restarted).
    attempt: int = 1
    children: list[str] = field(default_factory=list)


class RunProgress:
    """An event sink that keeps a live view of the run (use as a context manager)."""

    def __init__(self, control: RunControl, console: Console) -> None:
        self.control = control
        self.console = console
        self.agents: dict[str, _Agent] = {}
        self.counts: dict[str, int] = {}
        self.model_calls = 0
        self.tool_calls = 0
        self.cached = 0
        self.note = "Ctrl-C pauses after the current step · twice stops at once"
        self._live = Live(self, console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> RunProgress:
        self.control.add_sink(self)
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Clear the panel and give the terminal its cursor back (safe to call twice)."""
        self._live.stop()
        self.control.remove_sink(self)

    # -- events -----------------------------------------------------------------

    def __call__(self, event: dict[str, Any]) -> None:
        event = _printable_event(event)
        kind = event["event"]
        ns = event.get("ns")
        if kind in ("run_started", "run_resumed"):
            self._begin(event)
        elif kind == "model_call":
            agent = self._agent(ns, event["agent"])
            agent.turn = max(agent.turn, event.get("turn") or 0)
            agent.max_turns = event.get("max_turns") or agent.max_turns
            self.model_calls += 1
            self.cached += event.get("cached_tokens") or 0
            if event.get("outcome") != "ok":
                self._print(event, agent.label)
        elif kind == "tool_call":
            agent = self._agent(ns, event["agent"])
            mark = "✗" if event.get("outcome") == "error" else "✓"
            seconds = (event.get("latency_ms") or 0) / 1000
            agent.last = f"{event['tool']}({event.get('args', '')}) {mark} {seconds:.1f}s"
            self.tool_calls += 1
            self._print(event, agent.label)
        elif kind == "agent_started":
            if ns not in self.agents:  # a call resumed mid-way keeps its label
                self._new_call(ns or "", event["agent"])
                self.tool_calls += 1  # a sub-agent call is a tool call of its parent
            self._print(event, self.agents[ns].label)
        elif kind == "agent_finished":
            agent = self._agent(ns, event["agent"])
            agent.done = True
            self._print(event, agent.label)
        elif kind == "restarted":
            agent = self._agent(ns, event["agent"])
            agent.turn, agent.attempt = 0, event.get("attempt") or agent.attempt + 1
            self._print(event, agent.label)
        elif kind in ("budget_reached", "run_paused", "run_failed"):
            self._print(event, self._agent(ns, event.get("agent") or "run").label)

    def _begin(self, event: dict[str, Any]) -> None:
        """A session starts: a resumed run brings its counts and its calls in flight."""
        if event.get("entry"):
            self.agents.setdefault("", _Agent(label=event["entry"]))
        usage = event.get("usage") or {}
        self.model_calls = usage.get("model_calls", 0)
        self.tool_calls = usage.get("tool_calls", 0)
        self.cached = usage.get("cached_tokens", 0)
        for call in event.get("calls") or ():
            agent = self._new_call(call.get("checkpoint_ns") or "", call["agent"])
            agent.turn = call.get("turns") or 0
            agent.done = call.get("status") != "running"

    def _new_call(self, ns: str, name: str) -> _Agent:
        parent = self._parent(ns)
        self.counts[name] = self.counts.get(name, 0) + 1
        label = f"{name}#{self.counts[name]}"
        self.agents[ns] = _Agent(label=f"{parent}{SEP}{label}" if parent else label)
        return self.agents[ns]

    def _agent(self, ns: str | None, name: str) -> _Agent:
        ns = ns or ""
        if ns not in self.agents:
            parent = self._parent(ns) if ns else ""
            self.agents[ns] = _Agent(label=f"{parent}{SEP}{name}" if parent else name)
        return self.agents[ns]

    def _parent(self, ns: str) -> str:
        """The label of the agent that made the call running in ``ns``."""
        parent_ns = ns.rpartition("|")[0]
        if parent_ns in self.agents:
            return self.agents[parent_ns].label
        return self.agents[""].label if "" in self.agents else ""

    def _print(self, event: dict[str, Any], label: str) -> None:
        line = describe(event, label)
        if line is not None:
            stamp = Text(f"{_duration(self.control.wall_seconds):>7} ", style="dim")
            self.console.print(stamp + line, overflow="ellipsis", no_wrap=True)

    # -- the panel --------------------------------------------------------------

    def __rich__(self) -> RenderableType:
        control = self.control
        tokens = f"{control.tokens:,} tokens"
        if self.cached:
            tokens += f" ({self.cached:,} cached)"
        head = Text.assemble(
            ("● ", "green"),
            (printable(control.run_id, multiline=False), "bold"),
            f" · {_duration(control.wall_seconds)} · {tokens}",
            f" · {self.model_calls} model calls · {self.tool_calls} tool calls",
        )
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, overflow="ellipsis")
        for agent in list(self.agents.values()):
            if agent.done:
                continue
            budget = f"/{agent.max_turns}" if agent.max_turns else ""
            turn = f"turn {agent.turn}{budget}" if agent.turn else "starting"
            if agent.attempt > 1:
                turn += f" · attempt {agent.attempt}"
            table.add_row(agent.label, turn, Text(agent.last))
        reason = control.pause_reason and printable(control.pause_reason, multiline=False)
        note = reason and f"pausing after the current step ({reason})"
        return Group(head, table, Text(note or self.note, style="dim"))


def describe(event: dict[str, Any], label: str) -> Text | None:
    """One event as a short human line (None: not worth a line of its own)."""
    kind = event["event"]
    if kind == "tool_call":
        ok = event.get("outcome") != "error"
        return Text.assemble(
            (f"{label}  ", "cyan"),
            f"t{event.get('turn')}  {event['tool']}({event.get('args', '')}) ",
            ("✓" if ok else "✗", "green" if ok else "red"),
            f" {(event.get('latency_ms') or 0) / 1000:.1f}s → ",
            (str(event.get("result", "")), "dim"),
        )
    if kind == "agent_started":
        return Text.assemble(("▶ ", "green"), (label, "cyan"), f"  {event.get('subtask', '')}")
    if kind == "agent_finished":
        seconds = (event.get("latency_ms") or 0) / 1000
        return Text.assemble(
            ("■ ", "green" if event.get("status") == "completed" else "red"),
            (label, "cyan"),
            f"  {event.get('status')} ({event.get('stop_reason')}), {event.get('turns')} turns,"
            f" {_duration(seconds)}",
        )
    if kind == "model_call":
        detail = event.get("detail") or ""
        what = f"  t{event.get('turn')} {event['outcome']}: {detail}"
        return Text.assemble(("↺ ", "yellow"), (label, "cyan"), what)
    if kind == "restarted":
        what = (
            f"  attempt {event.get('attempt')}: the last ended with no boxed answer"
            f" ({event.get('after')}, {event.get('turns')} turns); starting again from the task"
        )
        return Text.assemble(("↻ ", "yellow"), (label, "cyan"), what)
    if kind == "budget_reached":
        what = f"  {event['budget']} reached: closing with an answer"
        return Text.assemble(("⚑ ", "yellow"), (label, "cyan"), what)
    return None


def _printable_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its top-level strings on one line and safe for a terminal (the
    structures, e.g. a resume's ``calls``, are read for counts and names only)."""
    safe = {k: printable(v, multiline=False) if isinstance(v, str) else v for k, v in event.items()}
    if safe.get("calls"):  # copies: the other sinks (the event log) get the event as it was
        safe["calls"] = [
            {**call, "agent": printable(call.get("agent", ""), multiline=False)}
            for call in safe["calls"]
        ]
    return safe


class JsonEvents:
    """An event sink writing each event as one JSON line (``--json``: for scripts)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
