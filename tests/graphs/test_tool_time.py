"""Tool seconds wait for their own agent call's next model step, and only its."""

from __future__ import annotations

import time
from typing import Any

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from support.loop_kit import call, make_loop, run_loop, scripted, servers

from mirograph.agents.tools.base import on_server
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


server = pytest.fixture(servers)


@tool
def slow() -> str:
    """Takes half a second (the work of the tool, not a wait for something)."""
    time.sleep(0.5)
    return "done"


async def test_a_stopped_run_leaves_its_seconds_to_no_other_run(server: Any, tmp_path) -> None:
    """A session that stops between a tool step and the next model step (a pause, a
    crash) leaves seconds behind; another run with the same id, in another store,
    built in the same process, must not count them."""
    srv = server(scripted([call("slow")], "Done.</think>\n\n\\boxed{1}"))
    first = make_loop(srv, [on_server(slow, "lab")])
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "a.db")) as saver:
        graph = first.build().compile(checkpointer=saver, interrupt_after=["tools"])
        config = {"configurable": {"thread_id": "same"}}
        await graph.ainvoke({"question": "q"}, config, durability="sync")
        stopped = await graph.aget_state(config)
    assert stopped.next == ("model",)  # the tool ran; its seconds wait for this step
    answers = server(lambda body: "Done.</think>\n\n\\boxed{2}")
    other = make_loop(answers, [on_server(slow, "lab")])
    values = await run_loop(other, tmp_path, thread="same")
    assert values["stats"]["tool_calls"] == 0
    assert values["stats"]["wall_seconds"] < 0.4  # none of the other run's half second
