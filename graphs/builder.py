"""Turn a flow configuration into a LangGraph graph for one run."""

from __future__ import annotations

from dataclasses import dataclass

from langgraph.graph import StateGraph

from mirograph.agents.models import build_chat_model
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.tools.base import ToolContext
from mirograph.agents.tools.registry import resolve_tools
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import FlowConfig, recursion_limit
from mirograph.state.blobs import BlobStore


class FlowBuildError(ValueError):
    """A valid flow this version cannot build."""


def build_agent(
    flow: FlowConfig, name: str, ctx: ToolContext, blobs: BlobStore | None = None
) -> AgentLoop:
    """The agent loop of agent ``name``, with its own model, tools and window."""
    agent = flow.agents[name]
    if agent.sub_agents:
        raise FlowBuildError(
            f"agents.{name}.sub_agents: sub-agents are not supported by this version yet;"
            " remove the key to run the agent alone"
        )
    model_config = flow.models[agent.model]
    return AgentLoop(
        name=name,
        config=agent,
        model=build_chat_model(model_config),
        tools=resolve_tools(agent.tools, ctx),
        tools_in_prompt=model_config.protocol == "mirothinker",
        base_url=model_config.base_url,
        blobs=blobs,
        retry=RetryPolicy(max_retries=model_config.max_retries, base_s=model_config.retry_base_s),
        context_tokens=model_config.context_tokens,
        max_tokens=model_config.max_tokens,
    )


@dataclass
class FlowGraph:
    """The uncompiled graph of a flow, plus the agents whose connections it owns."""

    graph: StateGraph
    agents: list[AgentLoop]

    async def aclose(self) -> None:
        for agent in self.agents:
            await agent.aclose()


def build_flow_graph(
    flow: FlowConfig, ctx: ToolContext, blobs: BlobStore | None = None
) -> FlowGraph:
    """The flow's graph; ``blobs`` (the run store's) takes long tool results."""
    entry = build_agent(flow, flow.entry, ctx, blobs)
    return FlowGraph(graph=entry.build(), agents=[entry])


def flow_recursion_limit(flow: FlowConfig) -> int:
    return recursion_limit(flow.agents[flow.entry].max_turns)
