"""Our PostgreSQL saver beside LangGraph's stock one, under concurrent runs (issue 14).

Workload: N runs at once on one event loop (as one mirograph process runs many),
each a LangGraph agent loop of T turns with ``durability="sync"``: an instant fake
model whose reply calls a tool, then the tool's distinct ~8 KB page
(``bench_tools.distinct_text``), the history in mirograph's message channel
(``state.messages.Messages``: a turn writes only the messages it adds). Each turn
is two steps, so two checkpoints and the writes of their two tasks.

- **ours:** ``open_store(URL).checkpointer``, the ``PostgresSaver`` on the store's
  pool (``POOL_SIZE`` connections): each call takes a pooled connection of its own.
- **stock:** ``AsyncPostgresSaver`` on an ``AsyncConnectionPool`` set up as
  LangGraph's documentation does; it holds one lock over every call.

Two ways, each saver with its own serializer and channel versions, as shipped:

- **graph:** the runs are real graphs (``ainvoke``); engine and saver share the CPU.
- **replay:** the calls one run made (recorded once per saver, its versions
  included) are replayed on N threads at once, each thread's calls in order:
  the saver alone, without the engine's CPU in the way.

Both savers use the same server, a fresh database per saver, way, concurrency and
repeat; a warm-up run comes first on each. Measured: every ``aput`` /
``aput_writes`` call's time; a turn's write time is the sum of its two steps'
calls (the wait that ``durability="sync"`` puts before the next model call).
Reported per concurrency (each figure the median of ``--repeat`` rounds, the
savers' order alternating): a turn's write time p50 / p95, ``aput`` p50 / p95,
turns per second over all runs (turns ÷ wall time of the batch), this process's
CPU ms per turn, and stock ÷ ours.

    python -m benchmarks.pg_savers [--postgres URL] [--runs 1,8,32,64] [--turns 30]
                                   [--repeat 3] [--ways graph,replay]

Without ``--postgres`` a throwaway server is started (``tests/support/servers.py``;
PostgreSQL's server programs installed) and removed afterwards. The defaults take
about 9 minutes on a 2-core machine; ``--ways replay --repeat 1`` about one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# LangGraph reads TypedDict schemas from typing_extensions below Python 3.12.
from typing_extensions import TypedDict

from benchmarks import bench_tools
from benchmarks.long_run import fresh_database
from mirograph.state.messages import Messages

ROOT = Path(__file__).resolve().parents[1]
#: The stock saver's pool, as in LangGraph's documentation (ours: ``POOL_SIZE``, 16).
STOCK_POOL_SIZE = 20
FIGURES = ("turn_p50", "turn_p95", "aput_p50", "aput_p95", "turns_per_s", "cpu_ms")

MakeSaver = Callable[[str], AbstractAsyncContextManager[Any]]


@dataclass
class Clock:
    """Write-call times of every run, by thread and turn (turn k: steps 2k and 2k+1)."""

    aput: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    per_turn: dict[tuple[str, int], float] = field(default_factory=lambda: defaultdict(float))
    last_step: dict[str, int] = field(default_factory=dict)

    def checkpoint(self, config: dict[str, Any], step: int, seconds: float) -> None:
        thread = config["configurable"]["thread_id"]
        self.last_step[thread] = step
        self.aput.append(seconds)
        if step >= 0:  # not the input checkpoint
            self.per_turn[thread, step // 2] += seconds

    def wrote(self, config: dict[str, Any], seconds: float) -> None:
        thread = config["configurable"]["thread_id"]
        step = self.last_step.get(thread, -1) + 1  # the step after the last checkpoint
        self.writes.append(seconds)
        self.per_turn[thread, step // 2] += seconds


def timed(saver_type: type) -> type:
    """``saver_type`` whose ``aput`` / ``aput_writes`` report their time to ``.clock``."""

    class Timed(saver_type):  # type: ignore[misc, valid-type]
        clock: Clock

        async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            start = time.perf_counter()
            try:
                return await super().aput(config, checkpoint, metadata, new_versions)
            finally:
                self.clock.checkpoint(config, metadata["step"], time.perf_counter() - start)

        async def aput_writes(
            self, config: Any, writes: Any, task_id: str, task_path: str = ""
        ) -> None:
            start = time.perf_counter()
            try:
                await super().aput_writes(config, writes, task_id, task_path)
            finally:
                self.clock.wrote(config, time.perf_counter() - start)

    Timed.__name__ = f"Timed{saver_type.__name__}"
    return Timed


# -- the savers -----------------------------------------------------------------


@asynccontextmanager
async def ours(url: str) -> AsyncIterator[Any]:
    from mirograph.state.postgres.saver import PostgresSaver
    from mirograph.state.store import open_store

    async with open_store(url) as store:
        saver = store.checkpointer
        assert type(saver) is PostgresSaver, type(saver)
        saver.__class__ = timed(PostgresSaver)  # the store's own saver, timed
        yield saver


@asynccontextmanager
async def stock(url: str) -> AsyncIterator[Any]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(
        conninfo=url,
        max_size=STOCK_POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0},
        open=False,
    ) as pool:
        saver = timed(AsyncPostgresSaver)(pool)
        await saver.setup()
        yield saver


def version_form(make: MakeSaver) -> Callable[..., Any]:
    """The ``get_next_version`` of the saver that ``make`` opens."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from mirograph.state.postgres.saver import PostgresSaver

    return (PostgresSaver if make is ours else AsyncPostgresSaver).get_next_version


# -- the workload ---------------------------------------------------------------


class State(TypedDict):
    messages: Messages


def agent_graph(turns: int, pages: Sequence[str], checkpointer: Any) -> Any:
    """A model step (an instant fake model that calls a tool, ``turns`` times, then
    answers) and a tool step, over mirograph's message channel."""
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.graph import END, START, StateGraph

    async def model(state: State) -> dict[str, Any]:
        n = sum(1 for m in state["messages"] if m.type == "ai") + 1
        if n > turns:
            return {"messages": [AIMessage(f"\\boxed{{{turns}}}")]}
        call = {"name": "distinct_text", "args": {"index": n}, "id": f"call_{n}"}
        return {"messages": [AIMessage(f"Fetching page {n}.", tool_calls=[call])]}

    async def tool(state: State) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
        page = pages[call["args"]["index"] - 1]
        return {"messages": [ToolMessage(page, tool_call_id=call["id"])]}

    def route(state: State) -> str:
        return "tool" if state["messages"][-1].tool_calls else END  # type: ignore[union-attr]

    graph = StateGraph(State)
    graph.add_node("model", model)
    graph.add_node("tool", tool)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tool", END])
    graph.add_edge("tool", "model")
    return graph.compile(checkpointer=checkpointer)


async def run_graphs(saver: Any, runs: int, turns: int, pages: Sequence[str], prefix: str) -> None:
    """``runs`` graph runs at once, ``turns`` turns each."""
    from langchain_core.messages import HumanMessage

    graph = agent_graph(turns, pages, saver)

    async def one(i: int) -> None:
        config = {"configurable": {"thread_id": f"{prefix}-{i}"}, "recursion_limit": 2 * turns + 5}
        start = {"messages": [HumanMessage("Count the pages.")]}
        out = await graph.ainvoke(start, config, durability="sync")
        assert len(out["messages"]) == 2 * turns + 2, len(out["messages"])

    await asyncio.gather(*(one(i) for i in range(runs)))


@dataclass
class Call:
    """One saver call of a recorded run: ``aput`` or ``aput_writes`` and its arguments
    (the config reduced to the checkpoint it refers to)."""

    method: str
    parent: str | None
    args: tuple[Any, ...]


async def record(turns: int, pages: Sequence[str], next_version: Callable[..., Any]) -> list[Call]:
    """The saver calls of one graph run, with channel versions as ``next_version`` makes."""
    from langgraph.checkpoint.memory import InMemorySaver

    calls: list[Call] = []

    class Recorder(InMemorySaver):
        get_next_version = next_version

        async def aput(self, config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
            parent = config["configurable"].get("checkpoint_id")
            calls.append(Call("aput", parent, (checkpoint, dict(metadata), versions)))
            return await super().aput(config, checkpoint, metadata, versions)

        async def aput_writes(
            self, config: Any, writes: Any, task_id: str, task_path: str = ""
        ) -> None:
            parent = config["configurable"].get("checkpoint_id")
            calls.append(Call("aput_writes", parent, (list(writes), task_id, task_path)))
            await super().aput_writes(config, writes, task_id, task_path)

    await run_graphs(Recorder(), 1, turns, pages, "record")
    return calls


async def replay(saver: Any, runs: int, calls: Sequence[Call], prefix: str) -> None:
    """``calls`` on ``runs`` threads at once, each thread's in order."""

    async def one(i: int) -> None:
        thread = f"{prefix}-{i}"
        for call in calls:
            config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
            if call.parent is not None:
                config["configurable"]["checkpoint_id"] = call.parent
            await getattr(saver, call.method)(config, *call.args)

    await asyncio.gather(*(one(i) for i in range(runs)))


# -- measuring ------------------------------------------------------------------


async def measure(
    make: MakeSaver, way: str, server: str, runs: int, turns: int, pages: Sequence[str]
) -> dict[str, float]:
    """One saver, one way, one concurrency, on a fresh database, after a warm-up run."""
    calls = await record(turns, pages, version_form(make)) if way == "replay" else []
    async with make(fresh_database(server)) as saver:

        async def batch(n: int, prefix: str) -> None:
            if way == "replay":
                await replay(saver, n, calls, prefix)
            else:
                await run_graphs(saver, n, turns, pages, prefix)

        saver.clock = Clock()
        await batch(1, "warm")
        saver.clock = clock = Clock()
        cpu, start = time.process_time(), time.perf_counter()
        await batch(runs, "run")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    per_turn = [s for (_, turn), s in clock.per_turn.items() if turn < turns]
    assert len(per_turn) == runs * turns, (len(per_turn), runs * turns)
    return {
        "turn_p50": percentile(per_turn, 50) * 1000,
        "turn_p95": percentile(per_turn, 95) * 1000,
        "aput_p50": percentile(clock.aput, 50) * 1000,
        "aput_p95": percentile(clock.aput, 95) * 1000,
        "turns_per_s": runs * turns / wall,
        "cpu_ms": cpu / (runs * turns) * 1000,
    }


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def compare(
    server: str, ways: list[str], concurrency: list[int], turns: int, repeat: int
) -> list[tuple[str, int, dict[str, float], dict[str, float]]]:
    """Each way and concurrency: ours and stock, ``repeat`` rounds, medians."""
    pages = [bench_tools.distinct_text(i) for i in range(1, turns + 1)]
    rows = []
    for way in ways:
        for runs in concurrency:
            got: dict[str, list[dict[str, float]]] = {"ours": [], "stock": []}
            for round_ in range(repeat):
                order = [("ours", ours), ("stock", stock)]
                for name, make in order if round_ % 2 == 0 else order[::-1]:
                    got[name].append(await measure(make, way, server, runs, turns, pages))
            a, b = median_figures(got["ours"]), median_figures(got["stock"])
            rows.append((way, runs, a, b))
            print(
                f"  {way}, {runs} runs: ours {a['turns_per_s']:.0f} turns/s,"
                f" stock {b['turns_per_s']:.0f}",
                flush=True,
            )
    return rows


def median_figures(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in FIGURES}


# -- the server -----------------------------------------------------------------


@contextmanager
def throwaway_server() -> Iterator[str]:
    """A PostgreSQL server of the tests' kind in a temp dir; its URL."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from support.servers import PostgresServer, serving
    except ImportError as exc:
        raise SystemExit(
            f"cannot start a throwaway PostgreSQL ({exc}); pass --postgres URL naming a server"
        ) from None
    with tempfile.TemporaryDirectory() as tmp, serving(lambda: PostgresServer(Path(tmp))) as server:
        yield server.url


# -- report ---------------------------------------------------------------------


def table(rows: list[tuple[str, int, dict[str, float], dict[str, float]]]) -> str:
    lines = [
        "| way | runs | saver | turn writes p50, ms | turn writes p95, ms | aput p50, ms"
        " | aput p95, ms | turns/s | CPU ms/turn |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for way, runs, a, b in rows:
        for name, r in (("ours", a), ("stock", b)):
            cells = " | ".join(f"{r[k]:.{0 if k == 'turns_per_s' else 2}f}" for k in FIGURES)
            lines.append(f"| {way} | {runs} | {name} | {cells} |")
        ratios = " | ".join(f"{b[k] / a[k]:.2f}" for k in FIGURES)
        lines.append(f"| {way} | {runs} | **stock ÷ ours** | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="a server to create databases on")
    parser.add_argument("--runs", default="1,8,32,64", help="concurrencies, comma-separated")
    parser.add_argument("--turns", type=int, default=30, help="turns per run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure their median")
    parser.add_argument("--ways", default="replay,graph", help="replay, graph or both")
    args = parser.parse_args()
    concurrency = [int(n) for n in args.runs.split(",")]
    ways = args.ways.split(",")
    if unknown := set(ways) - {"replay", "graph"}:
        parser.error(f"unknown --ways {', '.join(sorted(unknown))}; use replay, graph or both")
    with nullcontext(args.postgres) if args.postgres else throwaway_server() as url:
        rows = asyncio.run(compare(url, ways, concurrency, args.turns, args.repeat))
    print(
        f"\n{args.turns} turns per run (2 checkpoints + their writes each, a ~8 KB tool"
        " result), durability=sync, one event loop; a fresh database per saver, way,"
        f" concurrency and round; medians of {args.repeat} rounds\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
