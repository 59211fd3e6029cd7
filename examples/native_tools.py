"""A native-protocol model with a custom tool, and a MiroThinker writer after it.

The analyst is any LangChain chat model with native tool calling (here an
OpenAI-compatible endpoint) and one plain Python function as its tool; the
writer is a MiroThinker agent that turns the analyst's report into the final
answer. Run and resume it like a flow::

    mirograph run "Which city is older, Graz or Turku?" --flow examples/native_tools.py:build_graph

Endpoints: ``$ANALYST_BASE_URL`` / ``$ANALYST_MODEL`` for the native model
(default: the MiroThinker server, which vLLM also serves with tool calling),
``$MIROGRAPH_BASE_URL`` for the writer.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

from mirograph.graphs.custom import AgentResult, GraphContext
from mirograph.state.schema import RunState

DATA = Path(__file__).parent / "data" / "cities.csv"


@tool
def city_facts(city: str) -> str:
    """Country, population and founding date of a city, from the bundled table."""
    with DATA.open(encoding="utf-8") as table:
        for row in csv.DictReader(table):
            if row["city"].lower() == city.strip().lower():
                return ", ".join(f"{key}: {value}" for key, value in row.items())
    raise ValueError(f"no city {city!r} in the table; known: Lyon, Porto, Turku, Graz")


class NativeState(RunState, total=False):
    report: str


def build_graph(ctx: GraphContext) -> StateGraph:
    writer_url = os.environ.get("MIROGRAPH_BASE_URL", "http://localhost:8000/v1")
    analyst = ctx.agent(
        "analyst",
        model={
            "protocol": "native",
            "provider": "openai",
            "base_url": os.environ.get("ANALYST_BASE_URL", writer_url),
            "model": os.environ.get("ANALYST_MODEL", "mirothinker"),
            "max_tokens": 4096,
        },
        tools=[city_facts],
        role="sub-agent",  # its closing reply is a report, not a boxed answer
        max_turns=20,
    )
    writer = ctx.agent("writer", model={"base_url": writer_url, "max_tokens": 4096}, max_turns=2)

    def report(state: Mapping[str, Any], result: AgentResult) -> dict[str, Any]:
        return {"report": result.answer or ""}

    def answer(state: Mapping[str, Any], result: AgentResult) -> dict[str, Any]:
        return {"answer": result.answer}

    def write_task(state: Mapping[str, Any]) -> str:
        return f"{state['question']}\n\nThe analyst's findings:\n{state.get('report', '')}"

    graph = StateGraph(NativeState)
    graph.add_node("analyse", analyst.node(ask=lambda s: s["question"], into=report))
    graph.add_node("write", writer.node(ask=write_task, into=answer))
    graph.add_edge(START, "analyse")
    graph.add_edge("analyse", "write")
    graph.add_edge("write", END)
    return graph
