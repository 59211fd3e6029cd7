"""Reports of runs stopped at awkward places: between a fan-out and its merge,
and custom graphs whose state has keys of their own."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from support.team_policy import team

from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import ToolContext
from mirograph.flows.loader import validate_flow
from mirograph.flows.report import build_report
from mirograph.graphs.builder import build_flow_graph, flow_recursion_limit
from mirograph.state.registry import RunRecord
from mirograph.state.schema import RunState


def record(flow: str) -> RunRecord:
    return RunRecord(id="r", question="Q", flow=flow, flow_spec={}, status="paused", pid=0)


async def test_calls_finished_before_their_merge_are_reported_once(tmp_path: Path) -> None:
    with SimServer(lambda body: team(body, browsing=2, coding=1)) as srv:
        flow = validate_flow(
            {
                "name": "team",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 256}},
                "agents": {
                    "planner": {"model": "m", "role": "main", "sub_agents": ["browsing", "coding"]},
                    "browsing": {"model": "m", "tools": ["support.team_tools:lookup"]},
                    "coding": {"model": "m", "tools": ["support.team_tools:compute"]},
                },
                "entry": "planner",
            }
        )
        built = build_flow_graph(flow, ToolContext("r", tmp_path))
        graph = built.graph.compile(checkpointer=InMemorySaver(), interrupt_before=["collect"])
        config = {"configurable": {"thread_id": "r"}, "recursion_limit": flow_recursion_limit(flow)}
        try:
            await graph.ainvoke({"question": "Q"}, config)  # stops where a kill could land
            snapshot = await graph.aget_state(config, subgraphs=True)
        finally:
            await built.aclose()
    assert snapshot.next == ("collect",)
    report = build_report(record("team"), flow, snapshot)
    rows = [(r["agent"], r["status"], r["turns"]) for r in report["invocations"]]
    assert rows == [("browsing", "completed", 3), ("coding", "completed", 2)]
    assert report["agents"]["browsing"]["turns"] == 3


async def test_a_custom_graph_with_its_own_results_key_is_reported() -> None:
    class State(RunState, total=False):
        results: Annotated[list[str], operator.add]

    async def work(state: dict[str, Any]) -> dict[str, Any]:
        return {"results": ["a", "b"]}

    graph = StateGraph(State)
    graph.add_node("work", work)
    graph.add_node("other", work)
    graph.add_edge(START, "work")
    graph.add_edge("work", "other")
    graph.add_edge("other", END)
    compiled = graph.compile(checkpointer=InMemorySaver(), interrupt_before=["other"])
    config = {"configurable": {"thread_id": "c"}}
    await compiled.ainvoke({"question": "Q"}, config)
    report = build_report(record("custom"), None, await compiled.aget_state(config, subgraphs=True))
    assert report["invocations"] == [] and report["agents"] == {}
    assert report["attempts"] == []  # no entry agent: no attempts
