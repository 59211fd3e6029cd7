"""Tool seconds that wait for their agent's next model or closing step.

An agent's counters (``stats``) include the time of its tool calls. The tool
step could write them itself, but that is one more channel write per tool step
(~1 ms a turn); the next model or closing step writes the counters anyway. So
the seconds wait here, in memory, until that step adds them.

They are kept by agent call, found from the step's config: the run's thread
and the agent's checkpoint namespace (``agent_namespace``), so that concurrent
runs of one graph keep theirs apart. Each agent graph has a ledger of its own,
freed with it: the runner builds the graph per session, so what a session that
stopped between a tool step and the next model step left here goes with it
(those seconds are lost, as with a crash) and never reaches another run.
"""

from __future__ import annotations

import threading

from langchain_core.runnables import RunnableConfig

from mirograph.graphs.run_control import agent_namespace
from mirograph.state.schema import AgentStats


class PendingToolTime:
    """Seconds of tool calls not yet added to the counters, per agent call."""

    def __init__(self) -> None:
        self._seconds: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()  # runs of other threads' event loops share it

    def add(self, config: RunnableConfig, seconds: float) -> None:
        """Keep a tool step's ``seconds`` for the agent call that ``config`` runs in."""
        key = _call_key(config)
        with self._lock:
            self._seconds[key] = self._seconds.get(key, 0.0) + seconds

    def take(self, config: RunnableConfig, stats: AgentStats) -> None:
        """Add the seconds waiting for ``config``'s agent call to its ``stats``."""
        with self._lock:
            seconds = self._seconds.pop(_call_key(config), 0.0)
        if seconds:
            stats["wall_seconds"] = round(stats["wall_seconds"] + seconds, 3)


def _call_key(config: RunnableConfig) -> tuple[str, str]:
    """One agent call in one run: the thread and the agent's checkpoint namespace."""
    configurable = config.get("configurable") or {}
    return str(configurable.get("thread_id", "")), agent_namespace(config)
