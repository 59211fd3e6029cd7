"""A graph that reads a stored custom-graph run without the user's builder.

``show`` and ``export`` of a custom graph's run rebuild its graph from the
stored reference (``path/to/file.py:build_graph``). Once that file moved or no
longer imports, this stand-in reads the same checkpoints: its state has the
keys the run's checkpoint holds (``invocations`` with its reducer), and each
node that ran agent calls gets an agent-loop-shaped subgraph, so each call's
own history (its checkpoint namespace) is still found. It can read, not run.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from mirograph.state.schema import AgentState, RunState

#: Channels LangGraph keeps for itself (not state keys).
_INTERNAL = ("__", "branch:", "start:")


async def stand_in_graph(
    checkpointer: BaseCheckpointSaver, run_id: str, name: str
) -> CompiledStateGraph:
    """A read-only graph over run ``run_id``'s checkpoints."""
    config = {"configurable": {"thread_id": run_id}}
    saved = await checkpointer.aget_tuple(config)
    stored = saved.checkpoint["channel_values"] if saved else {}
    schema = _state_schema([k for k in stored if not k.startswith(_INTERNAL)])
    # The agent calls are read through the state (their channel may be kept apart).
    values = (await _graph(schema, [], checkpointer, name).aget_state(config)).values
    return _graph(schema, _agent_nodes(values.get("invocations")), checkpointer, name)


def _graph(
    schema: type, agent_nodes: list[str], checkpointer: BaseCheckpointSaver, name: str
) -> CompiledStateGraph:
    graph = StateGraph(schema)
    if agent_nodes:
        agent = _agent_reader()
        for node in agent_nodes:
            graph.add_node(node, agent)
            graph.add_edge(START, node)
            graph.add_edge(node, END)
    else:
        graph.add_node("stored", _nothing)
        graph.add_edge(START, "stored")
    return graph.compile(checkpointer=checkpointer, name=name)


def _nothing(state: Any) -> dict[str, Any]:
    return {}


def _state_schema(keys: list[str]) -> type:
    """``RunState``'s keys (with their reducers) plus every other stored key, as is."""
    fields: dict[str, Any] = dict(RunState.__annotations__)
    fields.update({key: Any for key in keys if key not in fields})
    return TypedDict("StoredRunState", fields, total=False)  # type: ignore[operator]


def _agent_nodes(invocations: Any) -> list[str]:
    """Names of the nodes whose agent calls are recorded (``node:task`` namespaces)."""
    nodes: list[str] = []
    for record in invocations if isinstance(invocations, list) else ():
        ns = record.get("checkpoint_ns") if isinstance(record, dict) else None
        node = (ns or "").split("|", 1)[0].split(":", 1)[0]
        if node and node not in nodes:
            nodes.append(node)
    return nodes


def _agent_reader() -> CompiledStateGraph:
    """An agent loop's state, for reading one call's checkpoints."""
    graph = StateGraph(AgentState)
    graph.add_node("stored", _nothing)
    graph.add_edge(START, "stored")
    return graph.compile()
