"""Turn a flow configuration into a LangGraph graph for one run."""

from __future__ import annotations

from dataclasses import dataclass, replace

from langgraph.graph import StateGraph

from mirograph.agents.models import build_chat_model
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.tools.base import ToolContext
from mirograph.agents.tools.tool_refs import resolve_tools
from mirograph.errors import FlowBuildError, ToolRefError
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import FlowConfig, recursion_limit
from mirograph.graphs.sub_agents import SubAgent, sub_agent_tool
from mirograph.state.blobs import BlobStore


def build_agent(
    flow: FlowConfig,
    name: str,
    ctx: ToolContext,
    blobs: BlobStore | None = None,
    *,
    is_sub_agent: bool = False,
    built: dict[str, AgentLoop] | None = None,
    reading: bool = False,
    today: str | None = None,
) -> AgentLoop:
    """The agent loop of ``name``, with its own model, tools, window and sub-agents.

    Sub-agents are built first (depth first) and compiled without a
    checkpointer of their own: they inherit the run's, each call in its own
    namespace. ``built`` collects every loop made, for closing connections.
    ``reading``: the graph only reads a run's state (``show``, ``export``), so a
    tool that cannot be imported here (another machine, another environment)
    is left out instead of failing. ``today``: the date the system prompts state
    (a run's first day, so that a sub-agent started after a resume on a later day
    is told the same date as its parent); None: today.
    """
    built = {} if built is None else built
    agent = flow.agents[name]
    subs = []
    for sub_name in agent.sub_agents:
        sub_loop = built.get(sub_name) or build_agent(
            flow,
            sub_name,
            ctx,
            blobs,
            is_sub_agent=True,
            built=built,
            reading=reading,
            today=today,
        )
        sub_config = flow.agents[sub_name]
        tool = sub_agent_tool(
            sub_name,
            sub_config.role,
            name=sub_config.tool_name,
            description=sub_config.tool_description,
        )
        subs.append(SubAgent(sub_name, sub_loop.build().compile(name=sub_name), tool))
    try:
        tools = resolve_tools(
            agent.tools, replace(ctx, models=flow.models), search_dir=flow.flow_dir
        )
    except ToolRefError:
        if not reading:
            raise
        tools = []
    clash = {t.name for t in tools} & {s.tool.name for s in subs}
    if clash:
        raise FlowBuildError(
            f"agents.{name}: tool {sorted(clash)[0]!r} is both a tool and a sub-agent;"
            " set the sub-agent's tool_name to another name"
        )
    model_config = flow.models[agent.model]
    loop = AgentLoop(
        name=name,
        config=agent,
        model=build_chat_model(model_config),
        tools=tools,
        tools_in_prompt=model_config.protocol == "mirothinker",
        base_url=model_config.base_url,
        blobs=blobs,
        retry=RetryPolicy(max_retries=model_config.max_retries, base_s=model_config.retry_base_s),
        context_tokens=model_config.context_tokens,
        max_tokens=model_config.max_tokens,
        sub_agents=subs,
        is_sub_agent=is_sub_agent,
        **({"today": today} if today else {}),
    )
    built[name] = loop
    return loop


@dataclass
class FlowGraph:
    """The uncompiled graph of a flow, plus the agents and tools whose connections it owns."""

    graph: StateGraph
    agents: list[AgentLoop]
    tools: ToolContext | None = None

    async def aclose(self) -> None:
        for agent in self.agents:
            await agent.aclose()
        if self.tools is not None:
            await self.tools.aclose()


def build_flow_graph(
    flow: FlowConfig,
    ctx: ToolContext,
    blobs: BlobStore | None = None,
    *,
    reading: bool = False,
    today: str | None = None,
) -> FlowGraph:
    """The flow's graph; ``blobs`` (the run store's) takes long tool results;
    ``today``: the date its system prompts state (None: today)."""
    built: dict[str, AgentLoop] = {}
    entry = build_agent(flow, flow.entry, ctx, blobs, built=built, reading=reading, today=today)
    # Tools open connections and processes on first use, not here, so a build
    # that fails leaves nothing to close.
    return FlowGraph(graph=entry.build(), agents=list(built.values()), tools=ctx)


def flow_recursion_limit(flow: FlowConfig) -> int:
    """The largest step budget of any agent: each graph counts its own steps."""
    return max(
        recursion_limit(
            agent.max_turns,
            delegates=bool(agent.sub_agents),
            restarts=agent.max_restarts,
            rollbacks=agent.max_rollbacks,
        )
        for agent in flow.agents.values()
    )
