"""The message channel: a pure, batching-invariant append, stored as deltas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TypedDict

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

from mirograph.state.messages import Messages, append_messages


def _msgs(prefix: str, n: int) -> list[BaseMessage]:
    return [HumanMessage(content=f"{prefix}{i}", id=f"{prefix}{i}") for i in range(n)]


def test_batching_invariance() -> None:
    start = _msgs("s", 2)
    xs = [_msgs("a", 1), HumanMessage(content="b", id="b"), _msgs("c", 3)]
    ys = [AIMessage(content="d", id="d"), [], _msgs("e", 2)]

    stepwise = append_messages(append_messages(start, xs), ys)
    batched = append_messages(start, xs + ys)

    assert stepwise == batched
    assert [m.content for m in batched] == [
        "s0",
        "s1",
        "a0",
        "b",
        "c0",
        "c1",
        "c2",
        "d",
        "e0",
        "e1",
    ]


def test_one_write_at_a_time_equals_all_at_once() -> None:
    writes = [HumanMessage(content=str(i), id=str(i)) for i in range(5)]
    one_by_one: list = []
    for write in writes:
        one_by_one = append_messages(one_by_one, [write])
    assert one_by_one == append_messages([], writes)


def test_single_message_and_list_writes_are_equivalent() -> None:
    a, b = HumanMessage(content="a", id="a"), AIMessage(content="b", id="b")
    assert append_messages([], [a, b]) == [a, b]
    assert append_messages([], [[a, b]]) == [a, b]
    assert append_messages([], [a, [b]]) == [a, b]
    assert append_messages([], [[a], [b]]) == [a, b]


def test_messages_are_appended_not_merged_by_id() -> None:
    a = HumanMessage(content="first", id="same")
    b = HumanMessage(content="second", id="same")
    assert [m.content for m in append_messages([a], [b])] == ["first", "second"]


def test_a_remove_write_drops_that_message_and_batches_the_same() -> None:
    """A turn rolled back after its results: the reply goes, its results never came."""
    start = _msgs("s", 3)
    xs = [AIMessage(content="bad", id="bad")]
    ys = [RemoveMessage(id="bad"), [AIMessage(content="good", id="good")]]
    stepwise = append_messages(append_messages(start, xs), ys)
    assert stepwise == append_messages(start, xs + ys)
    assert [m.id for m in stepwise] == ["s0", "s1", "s2", "good"]
    assert append_messages(start, [RemoveMessage(id="s1")]) == [start[0], start[2]]
    assert append_messages(start, [RemoveMessage(id="none")]) == start  # nothing to drop
    assert [m.id for m in start] == ["s0", "s1", "s2"]  # not mutated


def test_empty_writes_leave_history_unchanged() -> None:
    current = _msgs("s", 2)
    assert append_messages(current, []) == current
    assert append_messages(current, [[]]) == current


def test_inputs_not_mutated() -> None:
    current = _msgs("s", 2)
    batch = _msgs("a", 2)
    writes = [batch, HumanMessage(content="x", id="x")]
    current_copy, writes_copy = copy.deepcopy(current), copy.deepcopy(writes)

    result = append_messages(current, writes)

    assert result is not current
    assert current == current_copy
    assert writes == writes_copy
    assert len(batch) == 2
    assert len(result) == 5


class _State(TypedDict):
    messages: Messages
    step: int


async def _step(state: _State) -> dict:
    n = state["step"] + 1
    call_id = f"call_{n}"
    return {
        "step": n,
        "messages": [
            AIMessage(
                content=f"turn {n}",
                id=f"ai{n}",
                tool_calls=[{"name": "t", "args": {"n": n}, "id": call_id, "type": "tool_call"}],
            ),
            ToolMessage(content=f"result {n}", tool_call_id=call_id, id=f"tool{n}"),
        ],
    }


def _route(state: _State) -> str:
    return "step" if state["step"] < 4 else END


def _graph() -> StateGraph:
    builder = StateGraph(_State)
    builder.add_node("step", _step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", _route)
    return builder


async def test_sqlite_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "checkpoints.db")
    config = {"configurable": {"thread_id": "t1"}}
    start = {"messages": [HumanMessage(content="the task", id="task")], "step": 0}

    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        graph = _graph().compile(checkpointer=saver)
        final = await graph.ainvoke(start, config, durability="sync")

    expected = [HumanMessage(content="the task", id="task")]
    for n in range(1, 5):
        expected.extend(
            [
                AIMessage(
                    content=f"turn {n}",
                    id=f"ai{n}",
                    tool_calls=[
                        {"name": "t", "args": {"n": n}, "id": f"call_{n}", "type": "tool_call"}
                    ],
                ),
                ToolMessage(content=f"result {n}", tool_call_id=f"call_{n}", id=f"tool{n}"),
            ]
        )
    assert final["messages"] == expected

    async with AsyncSqliteSaver.from_conn_string(path) as fresh:
        graph = _graph().compile(checkpointer=fresh)
        snapshot = await graph.aget_state(config)

    assert snapshot.values["step"] == 4
    restored = snapshot.values["messages"]
    assert restored == expected
    assert [type(m) for m in restored] == [type(m) for m in expected]
    assert restored[1].tool_calls == expected[1].tool_calls


async def test_new_saver_continues_the_stored_history(tmp_path: Path) -> None:
    path = str(tmp_path / "checkpoints.db")
    config = {"configurable": {"thread_id": "t1"}}
    start = {"messages": [HumanMessage(content="the task", id="task")], "step": 0}

    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await _graph().compile(checkpointer=saver).ainvoke(start, config, durability="sync")

    more = {"messages": [HumanMessage(content="again", id="again")], "step": 2}
    async with AsyncSqliteSaver.from_conn_string(path) as fresh:
        await _graph().compile(checkpointer=fresh).ainvoke(more, config, durability="sync")

    async with AsyncSqliteSaver.from_conn_string(path) as reader:
        snapshot = await _graph().compile(checkpointer=reader).aget_state(config)

    ids = [m.id for m in snapshot.values["messages"]]
    first_run = ["task"] + [x for n in range(1, 5) for x in (f"ai{n}", f"tool{n}")]
    second_run = ["again"] + [x for n in range(3, 5) for x in (f"ai{n}", f"tool{n}")]
    assert ids == first_run + second_run
