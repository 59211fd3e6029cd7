"""What the runner tells a running graph, and what the graph tells back.

The runner sets one ``RunControl`` for a run (a context variable, so every
node, sub-agent and tool task of the run sees it). Agent loops report each
model call, tool call and sub-agent call to it as an event, and ask it at each
step boundary whether to pause (Ctrl-C, ``mirograph pause``) or to close early
(a budget is spent). Without a control (a graph run by LangGraph directly)
nothing is reported and nothing pauses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from langgraph.errors import GraphBubbleUp

from mirograph.state.redact import scrub

log = logging.getLogger(__name__)

#: Receives each event as a dict (``event`` names it; ``ts`` and ``run_id`` are added).
EventSink = Callable[[dict[str, Any]], None]


class PauseRequested(GraphBubbleUp):
    """Raised at a step boundary once a pause is asked for.

    A ``GraphBubbleUp``: LangGraph lets the step's other tasks (sibling
    sub-agents) finish their own current step, saves their writes, then
    stops. Everything before is checkpointed, so the run resumes from here.
    """


@dataclass(frozen=True)
class Budgets:
    """Soft limits of a run; past one, every agent goes to its closing request."""

    #: Prompt plus completion tokens of all model calls of the run, all agents.
    max_tokens_total: int | None = None
    #: Seconds the run has been running, over all its sessions (pauses excluded).
    max_wall_seconds: float | None = None


#: The stop reasons a spent run budget gives (``RunControl.over_budget``).
BUDGET_REASONS = frozenset(field.name for field in dataclass_fields(Budgets))


class RunControl:
    """Pause requests, budgets and the event stream of one run session."""

    def __init__(
        self,
        *,
        on_event: EventSink | None = None,
        budgets: Budgets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = ""
        self._sinks: list[EventSink] = [on_event] if on_event is not None else []
        #: Budgets given here win over the flow's, key by key.
        self._explicit_budgets = budgets
        self.budgets = budgets or Budgets()
        self.pause_check: Callable[[], str | None] | None = None
        self.tokens = 0
        self.wall_before = 0.0
        self._clock = clock
        self._started = clock()
        self._pause: str | None = None
        self._lock = threading.Lock()

    def begin(
        self,
        run_id: str,
        *,
        budgets: Budgets | None = None,
        tokens_before: int = 0,
        wall_before: float = 0.0,
        pause_check: Callable[[], str | None] | None = None,
    ) -> None:
        """Start a session of ``run_id``: what it spent before, and where to look for pauses.

        ``pause_check`` is asked at every step boundary (e.g. the store's pause
        flag, set by another process); a reason it returns pauses the run.
        """
        self.run_id = run_id
        self.budgets = _merged(self._explicit_budgets, budgets)
        self.tokens = tokens_before
        self.wall_before = wall_before
        self.pause_check = pause_check
        self._started = self._clock()

    def end_session(self) -> None:
        """The session is over: a pause it was asked for is spent (the next session
        of the same control, e.g. a resume, runs until asked again)."""
        with self._lock:
            self._pause = None

    def add_sink(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def remove_sink(self, sink: EventSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    # -- pause ------------------------------------------------------------------

    def request_pause(self, reason: str = "pause requested") -> None:
        """Ask the run to stop at its next step boundary (safe from any thread)."""
        with self._lock:
            if self._pause is None:
                self._pause = reason

    @property
    def pause_reason(self) -> str | None:
        return self._pause

    def check_pause(self) -> None:
        """Raise ``PauseRequested`` if a pause was asked for, here or through the store."""
        check = self.pause_check
        if self._pause is None and check is not None and (reason := check()) is not None:
            self.request_pause(reason)
        if self._pause is not None:
            raise PauseRequested(self._pause)

    # -- budgets ----------------------------------------------------------------

    @property
    def wall_seconds(self) -> float:
        """Active seconds of the run: earlier sessions plus this one."""
        return self.wall_before + self._clock() - self._started

    def over_budget(self) -> str | None:
        """The budget key that is spent, or None."""
        budgets = self.budgets
        if budgets.max_tokens_total is not None and self.tokens >= budgets.max_tokens_total:
            return "max_tokens_total"
        if budgets.max_wall_seconds is not None and self.wall_seconds >= budgets.max_wall_seconds:
            return "max_wall_seconds"
        return None

    # -- events -----------------------------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        """Report one event; model calls also count toward the token budget."""
        if event == "model_call":
            self.tokens += int(fields.get("prompt_tokens") or 0)
            self.tokens += int(fields.get("completion_tokens") or 0)
        if not self._sinks:
            return
        # Scrubbed once, for every sink: the log, the terminal, a user's callback.
        record = scrub({"event": event, "ts": time.time(), "run_id": self.run_id, **fields})
        for sink in list(self._sinks):
            try:
                sink(record)
            except Exception as exc:  # a closed pipe or a full disk must not fail the run
                self._sinks.remove(sink)
                log.warning("event sink %r dropped after it failed: %s", sink, exc)


def _merged(explicit: Budgets | None, flow: Budgets | None) -> Budgets:
    """Each budget given to the control wins over the flow's, key by key."""
    explicit, flow = explicit or Budgets(), flow or Budgets()
    return Budgets(
        max_tokens_total=explicit.max_tokens_total or flow.max_tokens_total,
        max_wall_seconds=explicit.max_wall_seconds or flow.max_wall_seconds,
    )


_CONTROL: ContextVar[RunControl | None] = ContextVar("mirograph_run_control", default=None)


def current_control() -> RunControl | None:
    """The control of the run this code runs in, if a runner set one."""
    return _CONTROL.get()


@contextmanager
def controlling(control: RunControl | None) -> Iterator[RunControl | None]:
    """Make ``control`` the current one for the code run inside (and tasks it starts)."""
    token = _CONTROL.set(control)
    try:
        yield control
    finally:
        _CONTROL.reset(token)


def announce_call(
    agent: str, parent: str, ns: str, call_id: str, subtask: str
) -> Callable[[str, str | None, int], None]:
    """Report an agent call starting (``agent_started``); the function returned
    reports it finishing (``agent_finished``) with its status, stop reason and turns."""
    control = current_control()
    started = time.perf_counter()
    call = {"agent": agent, "parent": parent, "ns": ns, "call_id": call_id}
    if control is not None:
        control.emit("agent_started", **call, subtask=subtask)

    def finished(status: str, stop_reason: str | None, turns: int) -> None:
        if control is not None:
            seconds = time.perf_counter() - started
            control.emit(
                "agent_finished",
                **call,
                status=status,
                stop_reason=stop_reason,
                turns=turns,
                latency_ms=round(seconds * 1000, 1),
            )

    return finished


def agent_namespace(config: Any) -> str:
    """The checkpoint namespace of the agent whose node runs with ``config``.

    A node's own namespace ends with its task (``...|model:<id>``); the agent
    is the graph around it: ``""`` for the entry agent, ``agent_browsing:<id>``
    for a sub-agent call (what the delegating node records as the call's
    namespace).
    """
    ns = ((config or {}).get("configurable") or {}).get("checkpoint_ns") or ""
    return ns.rpartition("|")[0]
