"""The checkpoint serializer's fast path rebuilds chat messages exactly."""

from __future__ import annotations

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
