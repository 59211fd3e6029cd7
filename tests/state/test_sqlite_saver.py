"""The inline SQLite saver: LangGraph's SqliteSaver semantics with compact versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from mirograph.state.messages import Messages
from mirograph.state.serde import message_serializer
from mirograph.state.sqlite_saver import LoopSqliteSaver


class Chat(TypedDict):
    messages: Messages


async def reply(state: Chat) -> dict:
    return {"messages": [AIMessage(f"reply {len(state['messages'])}")]}


def saver(path: Path) -> LoopSqliteSaver:
    conn = sqlite3.connect(path, check_same_thread=False)
    return LoopSqliteSaver(conn, serde=message_serializer())


async def test_checkpoints_survive_a_new_connection_and_versions_are_integers(
    tmp_path: Path,
) -> None:
    graph = StateGraph(Chat)
    graph.add_node("reply", reply)
    graph.add_edge(START, "reply")
    config = {"configurable": {"thread_id": "t"}}
    first = graph.compile(checkpointer=saver(tmp_path / "cp.db"))
    for i in range(3):
        await first.ainvoke({"messages": [HumanMessage(f"q{i}")]}, config, durability="sync")

    again = graph.compile(checkpointer=saver(tmp_path / "cp.db"))
    state = await again.aget_state(config)
    assert [m.content for m in state.values["messages"]] == [
        "q0",
        "reply 1",
        "q1",
        "reply 3",
        "q2",
        "reply 5",
    ]
    versions = (await again.checkpointer.aget_tuple(config)).checkpoint["channel_versions"]
    assert versions and all(isinstance(v, int) for v in versions.values())
    history = [c async for c in again.aget_state_history(config)]
    assert len(history) == 9  # input + loop step per invoke, each committed


def test_next_version_continues_from_stock_string_versions() -> None:
    s = LoopSqliteSaver(sqlite3.connect(":memory:"))
    assert s.get_next_version(None, None) == 1
    assert s.get_next_version(41, None) == 42
    assert s.get_next_version("00000000000000000000000000000041.0.53", None) == 42
