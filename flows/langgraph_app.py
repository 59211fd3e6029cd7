"""The shipped flows as graphs for a LangGraph server (``langgraph dev``, ``langgraph up``).

``langgraph.json`` names one attribute of this module per shipped flow:
``single_agent`` for ``single-agent``, ``deep_research`` for ``deep-research``
and so on; every ``flows/*.yaml`` gets one, so a new flow needs only its line
in ``langgraph.json``.

Each attribute is a graph *factory*, an async context manager taking the
``RunnableConfig``, not a compiled graph. The server calls it for every run and
every state read, with the thread in ``configurable.thread_id``, and closes it
when done. That gives each thread its own workspace, as each CLI run has one,
and closes the model's HTTP clients when the run ends, so nothing leaks
however often it is called (a build takes ~15 ms). A graph built once per
process would share one workspace among all threads.

Workspace: ``$MIROGRAPH_HOME/server/<thread_id>/workspace``. The flow is read
once per process (``${VAR:-default}`` expands from the server's environment,
e.g. ``MIROGRAPH_BASE_URL``), without checking API keys: a graph is described
(``get_graph``, ``get_schemas``) with none, and a tool that needs a missing key
says so when it is called. The graph compiles without a checkpointer (the
server adds its own) and carries the flow's recursion limit in its config.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cache
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from mirograph.agents.tools.base import ToolContext
from mirograph.flows.loader import load_flow, shipped_flows
from mirograph.graphs.builder import FlowGraph, build_flow_graph, flow_recursion_limit
from mirograph.graphs.config import FlowConfig
from mirograph.state.store import mirograph_home

GraphFactory = Callable[[RunnableConfig], AbstractAsyncContextManager[CompiledStateGraph]]

#: Reads with no thread (e.g. the graph's schema for Studio) share this name.
NO_THREAD = "_no-thread"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def attribute_name(flow: str) -> str:
    """The attribute of this module that serves ``flow``: ``deep-research`` -> ``deep_research``,
    ``mirothinker-v1.5`` -> ``mirothinker_v1_5``."""
    return flow.replace("-", "_").replace(".", "_")


def server_workspace(thread_id: str | None) -> Path:
    """The ``files`` workspace of a server thread; odd thread ids are hashed, never a path."""
    name = thread_id or NO_THREAD
    if not _SAFE_ID.fullmatch(name):
        name = hashlib.sha256(name.encode()).hexdigest()[:32]
    return mirograph_home() / "server" / name / "workspace"


@cache
def _flow(name: str) -> FlowConfig:
    # No key check: drawing the graph or reading its schemas needs no API key. A run
    # without one gets the search tool's one-line "needs TAVILY_API_KEY" error.
    return load_flow(name, check_env=False)


def _build(name: str, thread_id: str | None) -> tuple[FlowGraph, CompiledStateGraph]:
    """Blocking part (flow file, folders, HTTP clients), run off the server's event loop."""
    flow = _flow(name)
    workspace = server_workspace(thread_id)
    if thread_id:
        workspace.mkdir(parents=True, exist_ok=True)
    built = build_flow_graph(flow, ToolContext(run_id=thread_id or NO_THREAD, workspace=workspace))
    compiled = built.graph.compile(name=flow.name)
    return built, compiled.with_config(recursion_limit=flow_recursion_limit(flow))


def flow_graph(name: str) -> GraphFactory:
    """The server's graph factory for the shipped flow ``name``."""

    @asynccontextmanager
    async def factory(config: RunnableConfig) -> AsyncIterator[CompiledStateGraph]:
        thread_id = (config.get("configurable") or {}).get("thread_id")
        built, graph = await asyncio.to_thread(_build, name, str(thread_id) if thread_id else None)
        try:
            yield graph
        finally:
            await built.aclose()

    factory.__name__ = factory.__qualname__ = attribute_name(name)
    factory.__doc__ = f"The {name!r} flow, built for the thread in ``config``."
    return factory


__all__ = ["attribute_name", "flow_graph", "server_workspace"]
for _name in shipped_flows():
    globals()[attribute_name(_name)] = flow_graph(_name)
    __all__.append(attribute_name(_name))
