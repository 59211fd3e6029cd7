"""The store's SQLite saver: LangGraph's SqliteSaver semantics, compact versions that
the stock savers can continue (and it theirs), statements off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from mirograph.state.messages import Messages
from mirograph.state.sqlite_saver import LoopSqliteSaver, compact_version, stock_version
from mirograph.state.store import open_store

STEPS = 6
CONFIG: dict[str, Any] = {"configurable": {"thread_id": "t"}}


class Count(TypedDict):
    messages: Messages
    n: int


def step(state: Count) -> dict[str, Any]:
    return {"messages": [AIMessage(f"step {state['n'] + 1}")], "n": state["n"] + 1}


def counting_graph(checkpointer: BaseCheckpointSaver, *, pausing: bool = False) -> Any:
    """``step`` until ``n`` reaches STEPS; ``pausing``: stop after each step."""
    graph = StateGraph(Count)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", lambda s: END if s["n"] >= STEPS else "step")
    return graph.compile(checkpointer=checkpointer, interrupt_after=["step"] if pausing else None)


def expected_messages() -> list[str]:
    return ["go", *(f"step {i}" for i in range(1, STEPS + 1))]


def start() -> dict[str, Any]:
    return {"messages": [HumanMessage("go")], "n": 0}


def stored_versions(path: Path) -> list[Any]:
    """The channel versions of the thread's latest checkpoint, as stored."""
    with closing(sqlite3.connect(path)) as conn:
        return list(SqliteSaver(conn).get_tuple(CONFIG).checkpoint["channel_versions"].values())


async def test_checkpoints_survive_a_reopen_and_versions_are_compact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    async with open_store(url) as store:
        await counting_graph(store.checkpointer).ainvoke(start(), CONFIG, durability="sync")
    async with open_store(url) as store:
        graph = counting_graph(store.checkpointer)
        state = await graph.aget_state(CONFIG)
        assert [m.content for m in state.values["messages"]] == expected_messages()
        history = [c async for c in graph.aget_state_history(CONFIG)]
        assert len(history) == STEPS + 2  # input, then one checkpoint per step
    versions = stored_versions(tmp_path / "cp.db")
    assert versions and all(isinstance(v, str) and v[0].isspace() for v in versions)
    assert max(len(v) for v in versions) <= 3  # a lead character and the digits


async def test_a_thread_the_stock_saver_began_is_continued_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    with SqliteSaver.from_conn_string(str(path)) as stock:
        graph = counting_graph(stock, pausing=True)
        graph.invoke(start(), CONFIG, durability="sync")
        graph.invoke(None, CONFIG, durability="sync")
        assert graph.get_state(CONFIG).values["n"] == 2
    async with open_store(f"sqlite:///{path}") as store:
        graph = counting_graph(store.checkpointer)
        out = await graph.ainvoke(None, CONFIG, durability="sync")
    assert out["n"] == STEPS
    assert [m.content for m in out["messages"]] == expected_messages()
    # Continued in the thread's own (stock) form: a compact version would sort below it.
    assert all(len(v.split(".")[0]) == 32 for v in stored_versions(path))


async def test_a_thread_mirograph_began_is_continued_by_the_stock_async_saver(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cp.db"
    async with open_store(f"sqlite:///{path}") as store:
        graph = counting_graph(store.checkpointer, pausing=True)
        await graph.ainvoke(start(), CONFIG, durability="sync")
        await graph.ainvoke(None, CONFIG, durability="sync")
        assert (await graph.aget_state(CONFIG)).values["n"] == 2
    async with AsyncSqliteSaver.from_conn_string(str(path)) as stock:
        out = await counting_graph(stock).ainvoke(None, CONFIG, durability="sync")
    assert out["n"] == STEPS
    assert [m.content for m in out["messages"]] == expected_messages()
    # ... and back again: mirograph reads the mix and adds a step.
    async with open_store(f"sqlite:///{path}") as store:
        graph = counting_graph(store.checkpointer)
        await graph.aupdate_state(CONFIG, {"n": STEPS - 1})
        out = await graph.ainvoke(None, CONFIG, durability="sync")
    assert out["n"] == STEPS
    assert [m.content for m in out["messages"]][-1] == f"step {STEPS}"


def test_versions_sort_like_numbers_and_below_the_stock_form() -> None:
    numbers = (1, 2, 9, 10, 99, 100, 12345, 99999, 100000, 999999, 10**6, 10**7)
    compact = [compact_version(n) for n in numbers]
    assert compact == sorted(compact)
    assert compact_version(999999) < stock_version(1)
    assert compact_version(10**6) == stock_version(10**6)  # past six digits: the stock form
    assert compact_version(7) < f"{1:032}.{0.5:016}"  # the stock savers' own form
    # The stock savers' parse reads ours.
    assert [int(v.split(".")[0]) for v in compact] == list(numbers)


@pytest.mark.parametrize(
    ("current", "following"),
    [
        (None, compact_version(1)),
        (compact_version(41), compact_version(42)),
        (41, 42),  # a thread of an older mirograph, with integer versions
        (f"{41:032}.{0.123:016}", stock_version(42)),  # a stock thread keeps its form
    ],
)
async def test_next_version_keeps_the_threads_form(
    tmp_path: Path, current: Any, following: Any
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'cp.db'}") as store:
        saver = store.checkpointer
        assert isinstance(saver, LoopSqliteSaver)
        assert saver.get_next_version(current, None) == following


async def test_a_write_that_must_wait_waits_off_the_loop(tmp_path: Path) -> None:
    """Another connection holds the write lock: the step's writes wait for it on the
    store file's thread while the loop runs on, then complete once it is free."""
    path = tmp_path / "cp.db"
    loop_thread = threading.get_ident()
    waiting = threading.Event()

    def trace(statement: str) -> None:
        if threading.get_ident() != loop_thread and statement.startswith("INSERT"):
            waiting.set()  # a write reached the thread (where it waits for the lock)

    async with open_store(f"sqlite:///{path}") as store:
        store.checkpointer.conn.set_trace_callback(trace)
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process's write transaction
            run = asyncio.create_task(
                counting_graph(store.checkpointer).ainvoke(start(), CONFIG, durability="sync")
            )
            assert await asyncio.to_thread(waiting.wait, 30)  # the loop was free meanwhile
            assert not run.done()
            other.execute("COMMIT")
        out = await run
    assert [m.content for m in out["messages"]] == expected_messages()


async def test_a_queued_write_that_fails_fails_every_write_after_it(tmp_path: Path) -> None:
    """Queued writes are not awaited: a failure must stop the checkpoint behind it
    (it may refer to what failed), never go unseen."""
    path = tmp_path / "cp.db"
    async with open_store(f"sqlite:///{path}") as store:
        saver = store.checkpointer
        assert isinstance(saver, LoopSqliteSaver)
        gate = threading.Event()
        saver.file.submit(gate.wait, 30)  # the file's thread is busy: writes queue behind it
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c"}}
        await saver.aput_writes(config, [("finding", object())], "task")  # cannot serialize
        checkpoint = empty_checkpoint()
        writing = asyncio.create_task(saver.aput(config, checkpoint, {}, {}))
        gate.set()
        with pytest.raises(TypeError, match="not msgpack serializable"):
            await writing
        with pytest.raises(TypeError):
            await saver.aput(config, checkpoint, {}, {})
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (0,)
