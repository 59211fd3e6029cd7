"""The checkpoint serializer's fast path rebuilds chat messages exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from mirograph.state.serde import message_serializer

MESSAGES = [
    SystemMessage("system", id="s"),
    HumanMessage("task ✓", id="h"),
    AIMessage(
        "think</think>\n\ncall",
        id="a",
        tool_calls=[{"name": "t", "args": {"q": ["x", 1]}, "id": "c1", "type": "tool_call"}],
        invalid_tool_calls=[
            {"name": "u", "args": "{", "id": "c2", "error": "bad", "type": "invalid_tool_call"}
        ],
        additional_kwargs={"reasoning_content": "hidden"},
        response_metadata={"finish_reason": "stop"},
        usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    ),
    ToolMessage(
        "preview",
        tool_call_id="c1",
        name="t",
        status="error",
        id="r",
        additional_kwargs={"mirograph_blob": {"key": "k" * 64, "chars": 9000}},
    ),
]


def test_messages_round_trip_through_the_fast_path() -> None:
    serde = message_serializer()
    restored = serde.loads_typed(serde.dumps_typed(MESSAGES))
    assert restored == MESSAGES
    assert [type(m) for m in restored] == [type(m) for m in MESSAGES]
    assert restored[2].tool_calls == MESSAGES[2].tool_calls


def test_snapshots_and_other_values_decode_like_the_stock_serializer() -> None:
    serde, stock = message_serializer(), JsonPlusSerializer()
    snapshot = _DeltaSnapshot(list(MESSAGES))
    value = {"stats": {"turns": 3}, "snapshot": snapshot, "when": b"raw"}
    assert serde.loads_typed(stock.dumps_typed(value)) == stock.loads_typed(
        stock.dumps_typed(value)
    )
    assert serde.loads_typed(serde.dumps_typed(snapshot)).value == MESSAGES


_STRICT_RUN = """
import asyncio, sys
from dataclasses import dataclass
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict
from mirograph.state.messages import Messages
from mirograph.state.store import open_store


@dataclass
class Finding:  # a user's own type in a custom graph's state
    topic: str
    score: float


class Research(TypedDict):
    messages: Messages
    finding: Finding


def note(state):
    return {"messages": [AIMessage("noted")], "finding": Finding("alpha", 0.75)}


async def main(url):
    graph = StateGraph(Research)
    graph.add_node("note", note)
    graph.add_edge(START, "note")
    config = {"configurable": {"thread_id": "t"}}
    async with open_store(url) as store:
        compiled = graph.compile(checkpointer=store.checkpointer)
        await compiled.ainvoke({"messages": [HumanMessage("go")]}, config, durability="sync")
    async with open_store(url) as store:
        values = (await graph.compile(checkpointer=store.checkpointer).aget_state(config)).values
        print(repr(values["finding"]), [m.content for m in values["messages"]])
        # Without the graph's allowlist the same bytes stay blocked: strict mode holds.
        plain = await store.checkpointer.aget_tuple(config)
        print(type(plain.checkpoint["channel_values"]["finding"]).__name__)


asyncio.run(main(sys.argv[1]))
"""


def test_strict_msgpack_lets_the_graphs_own_types_through(tmp_path: Path) -> None:
    """Under LANGGRAPH_STRICT_MSGPACK a custom graph's state types (which LangGraph
    passes through ``with_msgpack_allowlist``) decode as themselves."""
    result = subprocess.run(
        [sys.executable, "-c", _STRICT_RUN, f"sqlite:///{tmp_path / 'runs.db'}"],
        env={**os.environ, "LANGGRAPH_STRICT_MSGPACK": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    restored, plain = result.stdout.splitlines()
    assert restored == "Finding(topic='alpha', score=0.75) ['go', 'noted']"
    assert plain == "dict"
