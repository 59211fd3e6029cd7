"""The native protocol: any LangChain chat model with native tool calls, same loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.tools import tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from mirograph.agents.config import ModelConfig
from mirograph.agents.models import build_chat_model
from mirograph.agents.sim.policies import tool_loop
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import on_server
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import AgentConfig


@tool
def echo(index: int) -> str:
    """Echo the index."""
    return f"echoed {index}"


async def test_native_model_runs_the_agent_loop_with_api_tools(tmp_path: Path) -> None:
    def policy(body: dict[str, Any]) -> str:
        return tool_loop(body, turns=2, server="lab", tool="echo", answer="native ok")

    with SimServer(policy, tool_call_parser="hermes") as srv:
        config = ModelConfig(protocol="native", base_url=srv.base_url, max_retries=0)
        loop = AgentLoop(
            name="main",
            config=AgentConfig(model="m", max_turns=5),
            model=build_chat_model(config),
            tools=[on_server(echo, "lab")],
            tools_in_prompt=False,
            base_url=srv.base_url,
        )
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
            graph = loop.build().compile(checkpointer=saver)
            out = await graph.ainvoke(
                {"question": "q"}, {"configurable": {"thread_id": "n"}}, durability="sync"
            )
        first = srv.requests[0]
    assert out["answer"] == "native ok"
    assert out["stats"]["turns"] == 3 and out["stats"]["tool_calls"] == 2
    assert [t["function"]["name"] for t in first["tools"]] == ["echo"]
    assert "# Tool-Use Formatting Instructions" not in first["messages"][0]["content"]
    second = srv.requests[1]["messages"]
    assert [m["role"] for m in second[-2:]] == ["assistant", "tool"]
    assert second[-1]["content"] == "echoed 1"
