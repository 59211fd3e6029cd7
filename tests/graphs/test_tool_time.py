"""Tool seconds wait for their own agent call's next model step, and only its."""

from __future__ import annotations

from mirograph.graphs.tool_time import PendingToolTime
from mirograph.state.schema import empty_stats


def config(thread: str, ns: str = "") -> dict:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}


def test_seconds_are_added_once_to_the_agent_call_they_belong_to() -> None:
    pending = PendingToolTime()
    pending.add(config("run-a", "tools:1"), 1.25)
    pending.add(config("run-a", "tools:2"), 0.5)  # the same agent call, a later tool step
    pending.add(config("run-b", "tools:1"), 7.0)  # another run of the same graph
    pending.add(config("run-a", "agent_x:9|tools:3"), 3.0)  # a sub-agent call of run-a
    stats = empty_stats()
    pending.take(config("run-a", "model:4"), stats)
    assert stats["wall_seconds"] == 1.75
    pending.take(config("run-a", "model:5"), stats)
    assert stats["wall_seconds"] == 1.75  # taken already
    sub, other = empty_stats(), empty_stats()
    pending.take(config("run-a", "agent_x:9|close:5"), sub)
    pending.take(config("run-b", "close:2"), other)
    assert (sub["wall_seconds"], other["wall_seconds"]) == (3.0, 7.0)
