"""A state edited at an interrupt (Studio's "edit state") leaves a run that goes on.

LangGraph applies ``update_state`` "as" a node without that node's routing;
the agent loop routes from its state, so the edited run still reaches its
answer, with ``as_node`` omitted, ``model`` or ``tools``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from support.loop_kit import call, make_loop, scripted, servers
from support.team_policy import team
from support.testkit import write_team_flow

from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import ToolContext, on_server
from mirograph.flows.loader import load_flow
from mirograph.graphs.builder import build_flow_graph
from mirograph.graphs.config import recursion_limit

ANSWER = "Done.</think>\n\n\\boxed{42}"


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return f"echo {text}"


server = pytest.fixture(servers)


@pytest.mark.parametrize("as_node", [None, "model", "tools"])
@pytest.mark.parametrize("interrupt", ["before_tools", "after_tools"])
async def test_an_edit_at_an_interrupt_keeps_the_run_going_to_its_answer(
    server: Any, tmp_path: Path, interrupt: str, as_node: str | None
) -> None:
    srv = server(scripted([call("echo", text="x"), call("echo", text="y")], ANSWER))
    loop = make_loop(srv, [on_server(echo, "lab")])
    where = {"interrupt_before": ["tools"]} if interrupt == "before_tools" else {}
    where = where or {"interrupt_after": ["tools"]}
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        graph = loop.build().compile(checkpointer=saver, **where)
        config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": recursion_limit(10)}
        try:
            await graph.ainvoke({"question": "What is it?"}, config, durability="sync")
            paused_at = (await graph.aget_state(config)).next
            edit = {"question": "What is it, exactly?"}
            await graph.aupdate_state(config, edit, as_node=as_node)
            assert (await graph.aget_state(config)).next, "the edit left nothing to run"
            for _ in range(10):  # each later interrupt is continued without an edit
                await graph.ainvoke(None, config, durability="sync")
                if not (await graph.aget_state(config)).next:
                    break
        finally:
            await loop.aclose()
        values = (await graph.aget_state(config)).values
    assert paused_at == (("tools",) if interrupt == "before_tools" else ("model",))
    assert values["answer"] == "42" and values["stop_reason"] == "answered"
    assert values["stats"]["turns"] == 3
    assert [m.text for m in values["messages"] if m.type == "tool"] == ["echo x", "echo y"]
    closing = srv.requests[-1]["messages"][-1]["content"]
    assert "What is it, exactly?" in closing  # the edit took effect


@pytest.mark.parametrize("as_node", [None, "model", "tools"])
async def test_an_edit_while_sub_agent_calls_wait_runs_each_call_once(
    home: Path, tmp_path: Path, as_node: str | None
) -> None:
    with SimServer(lambda body: team(body, browsing=2, coding=2)) as sim:
        path = write_team_flow(tmp_path / "team.yaml", sim.base_url)
        built = build_flow_graph(load_flow(str(path), []), ToolContext("edit", tmp_path / "ws"))
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
            graph = built.graph.compile(checkpointer=saver, interrupt_after=["model"])
            config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 60}
            try:
                await graph.ainvoke({"question": "What is it?"}, config, durability="sync")
                await graph.aupdate_state(config, {"question": "What is it, exactly?"}, as_node)
                waiting = (await graph.aget_state(config)).next
                for _ in range(5):
                    await graph.ainvoke(None, config, durability="sync")
                    if not (await graph.aget_state(config)).next:
                        break
            finally:
                await built.aclose()
            values = (await graph.aget_state(config)).values
        first_requests = [r for r in sim.requests if r["messages"][1]["content"][:8] == "Sub-task"]
    assert waiting == ("agent_browsing", "agent_coding")
    assert values["answer"] == "REPORT[browsing:2], REPORT[coding:2]"
    assert [r["agent"] for r in values["invocations"]] == ["browsing", "coding"]
    assert len(first_requests) == 2 * 4  # each sub-agent ran once: 2 calls, a no-call reply, close
