"""What LangGraph learns from the compiled agent graph: its subgraphs and each step's arguments.

The loop's own steps are given to LangGraph as callable objects (``agent_loop._Step``)
so that compiling a run's graph skips LangGraph's bytecode search for subgraphs;
the sub-agents, nodes of their own, must still be found, and every step must
still be called with what it asks for.
"""

from __future__ import annotations

from pathlib import Path

from langgraph.pregel import Pregel
from support.testkit import write_team_flow

from mirograph.agents.tools.base import ToolContext
from mirograph.flows.loader import load_flow
from mirograph.graphs.builder import build_flow_graph
from mirograph.graphs.sub_agents import node_name

STEPS_WITH_CONFIG = {"model", "tools", "close", "collect", "restart"}


async def test_sub_agents_are_found_as_subgraphs_and_steps_get_their_arguments(
    tmp_path: Path,
) -> None:
    path = write_team_flow(tmp_path / "team.yaml", "http://127.0.0.1:9/v1")
    flow = load_flow(str(path), [])
    built = build_flow_graph(flow, ToolContext("nodes", tmp_path / "ws"))
    try:
        graph = built.graph.compile()
        subs = flow.agents[flow.entry].sub_agents
        assert subs == ["browsing", "coding"]
        for sub in subs:
            found = graph.nodes[node_name(sub)].subgraphs
            assert len(found) == 1 and isinstance(found[0], Pregel) and found[0].name == sub
        steps = {"start", *STEPS_WITH_CONFIG}
        assert steps <= set(graph.nodes)
        for step in steps:
            node = graph.nodes[step]
            assert node.subgraphs == []
            callable_ = node.bound
            assert ("config" in callable_.func_accepts) == (step in STEPS_WITH_CONFIG), step
            assert callable_.afunc is not None and callable_.func is None
    finally:
        await built.aclose()
