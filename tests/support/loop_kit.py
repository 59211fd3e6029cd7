"""Helpers for agent-loop tests: scripted sim-model servers and a loop runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.models import build_chat_model
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.sim.server import SimServer
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import AgentConfig, recursion_limit


def call(tool_name: str, **args: Any) -> str:
    return f"Working.</think>\n\nCalling {tool_name}.\n\n" + render_call("lab", tool_name, args)


def is_closing(body: dict[str, Any]) -> bool:
    return is_closing_request(body["messages"][-1]["content"])


def scripted(replies: list[Any], then: Any) -> Callable[[dict[str, Any]], Any]:
    """A policy that answers the closing request with ``then`` and walks ``replies``."""
    queue = iter(replies)

    def policy(body: dict[str, Any]) -> Any:
        if is_closing(body):
            return then
        return next(queue, then)

    return policy


class Sleeps:
    """An injected sleep: records the delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def servers() -> Iterator[Callable[..., SimServer]]:
    started: list[SimServer] = []

    def start(policy: Any, **kwargs: Any) -> SimServer:
        srv = SimServer(policy, **kwargs).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.close()


def make_loop(
    srv: SimServer,
    tools: list[BaseTool],
    *,
    model: dict[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    context_tokens: int | None = None,
    **agent: Any,
) -> AgentLoop:
    config = ModelConfig(**{"base_url": srv.base_url, "max_tokens": 64, **(model or {})})
    return AgentLoop(
        name="main",
        config=AgentConfig(model="m", **{"max_turns": 10, **agent}),
        model=build_chat_model(config),
        tools=tools,
        base_url=srv.base_url,
        retry=retry or RetryPolicy(max_retries=0),
        max_tokens=config.max_tokens,
        context_tokens=context_tokens,
    )


async def run_loop(
    loop: AgentLoop,
    tmp_path: Path,
    thread: str = "t",
    question: str = "What is it?",
    *,
    resume: bool = False,
) -> dict[str, Any]:
    """Run ``loop`` on a SQLite checkpointer; ``resume`` continues the thread instead."""
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        graph = loop.build().compile(checkpointer=saver)
        config = {
            "configurable": {"thread_id": thread},
            "recursion_limit": recursion_limit(
                loop.config.max_turns,
                restarts=loop.restarts,
                rollbacks=loop.config.max_rollbacks,
            ),
        }
        try:
            graph_input = None if resume else {"question": question}
            await graph.ainvoke(graph_input, config, durability="sync")
        finally:
            await loop.aclose()
        return (await graph.aget_state(config)).values
