"""A custom graph whose one node reports ``NOTES`` events at once, then answers or,
with ``$NOTING_FAIL`` set, fails: a session that ends within the event store's
batching interval, so only its closing flush can have stored its events."""

from __future__ import annotations

import os
from typing import Any

from langgraph.graph import END, START, StateGraph

from mirograph.graphs.custom import GraphContext
from mirograph.graphs.run_control import current_control
from mirograph.state.schema import RunState

NOTES = 50


def build_graph(ctx: GraphContext) -> StateGraph:
    def work(state: dict[str, Any]) -> dict[str, Any]:
        control = current_control()
        assert control is not None
        for index in range(NOTES):
            control.emit("note", index=index)
        if os.environ.get("NOTING_FAIL"):
            raise RuntimeError("the work broke on purpose")
        return {"answer": "noted"}

    graph = StateGraph(RunState)
    graph.add_node("work", work)
    graph.add_edge(START, "work")
    graph.add_edge("work", END)
    return graph
