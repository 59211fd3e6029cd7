"""The state schemas describe themselves: LangGraph's JSON schemas (what
``get_schemas`` and Studio show) are built from them on every supported Python."""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph

from mirograph.agents.tools.base import ToolContext
from mirograph.flows.loader import load_flow
from mirograph.graphs.builder import build_flow_graph
from mirograph.state.schema import AgentInput, AgentOutput, AgentState, RunState


def test_the_agent_schemas_have_json_schemas() -> None:
    graph = StateGraph(AgentState, input_schema=AgentInput, output_schema=AgentOutput)
    graph.add_node("agent", lambda state: {"answer": state["question"]})
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    compiled = graph.compile()
    assert compiled.get_input_jsonschema()["required"] == ["question"]
    output = compiled.get_output_jsonschema()["properties"]
    assert {"answer", "stop_reason", "stats", "invocations"} <= set(output)
    assert "turns" in compiled.get_output_jsonschema()["$defs"]["AgentStats"]["properties"]


def test_a_custom_graphs_run_state_has_a_json_schema() -> None:
    graph = StateGraph(RunState)
    graph.add_node("answer", lambda state: {"answer": state["question"]})
    graph.add_edge(START, "answer")
    compiled = graph.compile()
    assert set(compiled.get_input_jsonschema()["properties"]) == {
        "question",
        "answer",
        "invocations",
    }


def test_the_flow_graphs_input_and_output_schemas(tmp_path: Path) -> None:
    flow = load_flow("single-agent", check_env=False)
    built = build_flow_graph(flow, ToolContext(run_id="schema", workspace=tmp_path))
    compiled = built.graph.compile(name=flow.name)
    assert "question" in compiled.get_input_jsonschema()["properties"]
    assert "answer" in compiled.get_output_jsonschema()["properties"]
