"""600-turn investigation: mirograph against stock LangGraph, in one invocation.

Workload (issue 3): one agent, 600 turns, one tool call per turn, each result a
distinct ~8 KB text. The answer comes at turn 600.

- **mirograph:** the `single-agent` flow with keep-5, a `sim-model` server
  over real HTTP with no added latency, the SQLite store, and sync durability.
- **stock:** the ReAct graph of `../shared/docs/baselines.md` (`add_messages`,
  an instant in-process fake model, `ToolNode`) on `SqliteSaver` with sync
  durability.

Engine time per turn is the time between two model calls, minus:
- model time: the HTTP call, measured around the OpenAI client's `post`;
- tool time: the tool's execution as the engine dispatches it, measured
  around `BaseTool.ainvoke` / `BaseTool.invoke`, the same way for both.

State load is timed in a fresh process.

With ``--postgres URL``, mirograph runs again with its store in a fresh database on
that server, and (unless ``--skip-stock``) the stock graph on the stock synchronous
``PostgresSaver`` in another: the same figures, side by side.

    python -m benchmarks.long_run [--turns 600] [--skip-stock] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import bench_tools, sim

#: The repository root: on the sim server's PYTHONPATH, for ``benchmarks.bench_policy``.
ROOT = Path(__file__).resolve().parents[1]


class ToolClock:
    """Times every tool execution (outermost ``BaseTool.invoke``/``ainvoke``)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._depth = 0

    def install(self) -> None:
        from langchain_core.tools import BaseTool

        clock, sync_invoke, async_invoke = self, BaseTool.invoke, BaseTool.ainvoke

        def invoke(self_: Any, *args: Any, **kwargs: Any) -> Any:
            clock._depth += 1
            start = time.perf_counter()
            try:
                return sync_invoke(self_, *args, **kwargs)
            finally:
                clock._depth -= 1
                if clock._depth == 0:
                    clock.durations.append(time.perf_counter() - start)

        async def ainvoke(self_: Any, *args: Any, **kwargs: Any) -> Any:
            clock._depth += 1
            start = time.perf_counter()
            try:
                return await async_invoke(self_, *args, **kwargs)
            finally:
                clock._depth -= 1
                if clock._depth == 0:
                    clock.durations.append(time.perf_counter() - start)

        BaseTool.invoke = invoke  # type: ignore[method-assign]
        BaseTool.ainvoke = ainvoke  # type: ignore[method-assign]


TOOL_CLOCK = ToolClock()
TOOL_CLOCK.install()


def db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def fresh_database(server: str) -> str:
    """A new, empty database on the PostgreSQL server of ``server``; its URL."""
    import psycopg

    name = f"mirograph_bench_{os.getpid()}_{time.time_ns()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name


def database_size(url: str) -> int:
    """Bytes of the store's tables (with their indexes and TOAST) in that database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM")  # dead rows of updated lease/run rows are not the store's size
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()
    return int(row[0] or 0)


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def window(per_turn: dict[int, float], lo: int, hi: int) -> list[float]:
    return [v for t, v in per_turn.items() if lo <= t <= hi]


def fresh_load_ms(*args: str, repeats: int = 3) -> float:
    """Median state-load time measured by fresh interpreter processes."""
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.long_run", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        times.append(float(re.search(r"LOAD_MS=([\d.]+)", out).group(1)))  # type: ignore[union-attr]
    return statistics.median(times)


# -- stock LangGraph ------------------------------------------------------------


def stock_graph(turns: int, checkpointer: Any, marks: list[float] | None = None) -> Any:
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    page = tool(bench_tools.distinct_text)

    def agent(state: MessagesState) -> dict[str, Any]:
        if marks is not None:
            marks.append(time.perf_counter())
        n = sum(1 for m in state["messages"] if m.type == "ai") + 1
        if n >= turns:
            return {"messages": [AIMessage(f"\\boxed{{{n - 1}}}")]}
        call = {"name": "distinct_text", "args": {"index": n}, "id": f"call_{n}"}
        return {"messages": [AIMessage(f"Fetching page {n}.", tool_calls=[call])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([page]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


@contextmanager
def stock_saver(store: str) -> Iterator[Any]:
    """The stock saver of ``store``: ``SqliteSaver`` on a file, or, for a
    ``postgresql://`` URL, the stock synchronous ``PostgresSaver`` (one connection)."""
    if store.startswith("postgresql://"):
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(store) as saver:
            saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(store, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def run_stock(workdir: Path, turns: int, server: str | None = None) -> dict[str, Any]:
    """The stock graph's run; ``server``: a PostgreSQL URL on which a fresh database
    holds its checkpoints (else a SQLite file under ``workdir``)."""
    path = workdir / "stock.db"
    store = fresh_database(server) if server else str(path)
    marks: list[float] = []
    TOOL_CLOCK.durations.clear()
    with stock_saver(store) as saver:
        graph = stock_graph(turns, saver, marks)
        config = {"configurable": {"thread_id": "stock"}, "recursion_limit": 2 * turns + 10}
        start = time.perf_counter()
        out = graph.invoke({"messages": [("user", "Count the pages.")]}, config, durability="sync")
        wall = time.perf_counter() - start
    transcript = sum(len(str(m.content).encode()) for m in out["messages"])
    tools = TOOL_CLOCK.durations
    per_turn = {
        i + 1: (marks[i + 1] - marks[i] - tools[i]) * 1000
        for i in range(min(len(marks) - 1, len(tools)))
    }
    return {
        "wall_s": wall,
        "store_bytes": database_size(store) if server else db_size(path),
        "transcript_bytes": transcript,
        "per_turn": per_turn,
        "load_ms": fresh_load_ms("--load-stock", store, str(turns)),
    }


def load_stock(store: str, turns: int) -> None:
    with stock_saver(store) as saver:
        graph = stock_graph(turns, saver)
        start = time.perf_counter()
        state = graph.get_state({"configurable": {"thread_id": "stock"}})
        ms = (time.perf_counter() - start) * 1000
    assert len(state.values["messages"]) >= 2 * turns - 1
    print(f"LOAD_MS={ms:.3f}")


# -- mirograph ------------------------------------------------------------------


def start_sim_model(turns: int) -> tuple[subprocess.Popen[str], str]:
    # As on vLLM, cached tokens are reported only with prompt-token details enabled.
    policy = f"benchmarks.bench_policy:long_run?turns={turns}"
    return sim.start_sim_model(policy, "--enable-prompt-tokens-details")


class ModelClock:
    """Wraps the OpenAI client's post(): model time and a prompt-prefix tally.

    Installed once; ``reset()`` starts a new run's tally.
    """

    def __init__(self) -> None:
        self.reset()
        self._installed = False

    def reset(self) -> None:
        self.calls: list[tuple[float, float]] = []
        self.observing: list[float] = []
        self.prefix_share: list[float] = []
        self.prompt_chars: list[int] = []
        self._previous = ""

    def install(self) -> None:
        """Wraps both ways a model call leaves: the SDK's ``post`` and the engine's own
        poster (``agents.mirothinker.wire``), which sends it where the SDK adds nothing;
        a call the poster hands to the SDK (a redirect) is counted once."""
        import openai

        from mirograph.agents.mirothinker.wire import Poster

        if self._installed:
            return
        self._installed = True
        clock, sdk_post, wire_post = self, openai.AsyncOpenAI.post, Poster.post_json
        inside = contextvars.ContextVar("inside_model_call", default=False)

        async def timed(call: Any, body: dict[str, Any] | None) -> Any:
            if inside.get():
                return await call
            observed = time.perf_counter()
            clock.observe((body or {}).get("messages", []))
            start = time.perf_counter()
            clock.observing.append(start - observed)  # the benchmark's own cost: excluded
            token = inside.set(True)
            try:
                return await call
            finally:
                inside.reset(token)
                clock.calls.append((start, time.perf_counter()))

        async def timed_sdk(self_: Any, path: str, *args: Any, **kwargs: Any) -> Any:
            return await timed(sdk_post(self_, path, *args, **kwargs), kwargs.get("body"))

        async def timed_wire(self_: Any, body: dict[str, Any]) -> Any:
            return await timed(wire_post(self_, body), body)

        openai.AsyncOpenAI.post = timed_sdk  # type: ignore[method-assign]
        Poster.post_json = timed_wire  # type: ignore[method-assign]

    def observe(self, messages: list[dict[str, Any]]) -> None:
        prompt = "".join(f"<|{m['role']}|>{m['content']}" for m in messages)
        if self._previous:
            self.prefix_share.append(common_prefix_length(prompt, self._previous) / len(prompt))
        self.prompt_chars.append(len(prompt))
        self._previous = prompt


MODEL_CLOCK = ModelClock()


def common_prefix_length(a: str, b: str) -> int:
    """Length of the common prefix, by binary search on slices (C-speed compares)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def run_mirograph(
    workdir: Path, turns: int, retention: list[str], server: str | None = None
) -> dict[str, Any]:
    """One mirograph run; ``server``: a PostgreSQL URL on which a fresh database holds
    the store (else a SQLite file under ``workdir``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    from mirograph.flows.loader import load_flow
    from mirograph.flows.runner import run_report, start_run

    proc, base_url = start_sim_model(turns)
    os.environ["MIROGRAPH_HOME"] = str(workdir / "home")
    store = fresh_database(server) if server else f"sqlite:///{workdir / 'mirograph.db'}"
    clock = MODEL_CLOCK
    clock.install()
    clock.reset()
    TOOL_CLOCK.durations.clear()
    try:
        flow = load_flow(
            "single-agent",
            [
                f"models.thinker.base_url={base_url}",
                f"agents.main.max_turns={turns}",
                "agents.main.keep_tool_results=5",
                "agents.main.tools=[benchmarks.bench_tools:distinct_text]",
                *retention,
            ],
        )
        start = time.perf_counter()
        outcome = asyncio.run(start_run("Count the pages.", flow, run_id="bench", store_url=store))
        wall = time.perf_counter() - start
        report = asyncio.run(run_report("bench", store_url=store))
    finally:
        proc.terminate()
        proc.wait()
    assert outcome.status == "completed", outcome
    assert report["agents"]["main"]["turns"] == turns, report
    calls, tools, observing = clock.calls, TOOL_CLOCK.durations, clock.observing
    per_turn = {
        i + 1: (calls[i + 1][0] - calls[i][1] - tools[i] - observing[i + 1]) * 1000
        for i in range(min(len(calls) - 1, len(tools)))
    }
    return {
        "wall_s": wall,
        "store_bytes": database_size(store) if server else db_size(workdir / "mirograph.db"),
        "transcript_bytes": transcript_bytes(store),
        "per_turn": per_turn,
        "load_ms": fresh_load_ms("--load-mirograph", store),
        "prefix_share": p50(clock.prefix_share[:turns]),
        "prefix_share_mean": statistics.fmean(clock.prefix_share[:turns]),
        "prompt_chars_mean": statistics.fmean(clock.prompt_chars[:turns]),
        "prompt_tokens": report["agents"]["main"]["prompt_tokens"],
        "cached_tokens": report["agents"]["main"]["cached_tokens"],
    }


def transcript_bytes(store: str) -> int:
    """Bytes of every message's full content (tool results read back from blobs)."""

    async def count() -> int:
        from mirograph.state.blobs import hydrate
        from mirograph.state.store import open_store

        async with open_store(store) as st:
            graph = _mirograph_graph(st)
            values = (await graph.aget_state({"configurable": {"thread_id": "bench"}})).values
            messages = await hydrate(values["messages"], st.blobs)
            return sum(len(str(m.content).encode()) for m in messages)

    return asyncio.run(count())


def _mirograph_graph(store: Any) -> Any:
    from mirograph.agents.tools.base import ToolContext
    from mirograph.flows.loader import validate_flow
    from mirograph.graphs.builder import build_flow_graph

    record = store.registry.get("bench")
    flow = validate_flow(record.flow_spec)
    built = build_flow_graph(flow, ToolContext("bench", Path(tempfile.gettempdir())), store.blobs)
    return built.graph.compile(checkpointer=store.checkpointer)


def load_mirograph(store: str) -> None:
    async def load() -> None:
        from mirograph.state.store import open_store

        async with open_store(store) as st:
            graph = _mirograph_graph(st)
            gc.freeze()  # as the CLI does once its imports are done (flows/cli.py, _call)
            start = time.perf_counter()
            state = await graph.aget_state({"configurable": {"thread_id": "bench"}})
            ms = (time.perf_counter() - start) * 1000
            assert state.values["stats"]["turns"] > 0
            print(f"LOAD_MS={ms:.3f}")

    asyncio.run(load())


# -- report ---------------------------------------------------------------------


def table(mg: dict[str, Any], stock: dict[str, Any] | None, turns: int) -> str:
    lo, hi = (10, 30), (turns - 20, turns)
    rows = []

    def row(name: str, a: float, b: float | None, fmt: str, target: str) -> None:
        ratio = f"{a / b:.3f}" if b else "-"
        rows.append(
            f"| {name} | {a:{fmt}} | {'-' if b is None else format(b, fmt)} | {ratio} | {target} |"
        )

    s = stock or {}
    mg_early, mg_late = p50(window(mg["per_turn"], *lo)), p50(window(mg["per_turn"], *hi))
    st_early = p50(window(s["per_turn"], *lo)) if s else None
    st_late = p50(window(s["per_turn"], *hi)) if s else None
    row(
        "store size, MB",
        mg["store_bytes"] / 1e6,
        s.get("store_bytes", 0) / 1e6 or None,
        ".2f",
        "≤ 2 × transcript",
    )
    row(
        "raw transcript, MB",
        mg["transcript_bytes"] / 1e6,
        s.get("transcript_bytes", 0) / 1e6 or None,
        ".2f",
        "",
    )
    row(
        "store ÷ transcript",
        mg["store_bytes"] / mg["transcript_bytes"],
        s["store_bytes"] / s["transcript_bytes"] if s else None,
        ".2f",
        "≤ 2",
    )
    row(f"engine ms/turn p50, turns {lo[0]}–{lo[1]}", mg_early, st_early, ".2f", "")
    row(f"engine ms/turn p50, turns {hi[0]}–{hi[1]}", mg_late, st_late, ".2f", "≤ 5 ms")
    row("late ÷ early p50", mg_late / mg_early, st_late / st_early if s else None, ".2f", "≤ 1.5")
    row("wall time of the run, s", mg["wall_s"], s.get("wall_s"), ".2f", "≤ 0.5 × stock")
    row("state load in a fresh process, ms", mg["load_ms"], s.get("load_ms"), ".1f", "≤ 50 ms")
    head = "| figure | mirograph | stock LangGraph | mirograph ÷ stock | target |"
    return head + "\n|---|---|---|---|---|\n" + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--skip-blocks", action="store_true", help="only keep-K retention")
    parser.add_argument(
        "--repeat", type=int, default=3, help="mirograph runs; each figure is their median"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run mirograph on PostgreSQL: a fresh database per run on this server",
    )
    parser.add_argument("--load-stock", nargs=2)
    parser.add_argument("--load-mirograph")
    args = parser.parse_args()
    if args.load_stock:
        return load_stock(args.load_stock[0], int(args.load_stock[1]))
    if args.load_mirograph:
        return load_mirograph(args.load_mirograph)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        runs = [
            run_mirograph(workdir / f"keep_last_{i}", args.turns, []) for i in range(args.repeat)
        ]
        mg = median_run(runs)
        pg = None
        if args.postgres:
            pg_runs = [
                run_mirograph(workdir / f"pg_{i}", args.turns, [], args.postgres)
                for i in range(args.repeat)
            ]
            pg = median_run(pg_runs)
        blocks = None
        if not args.skip_blocks:
            blocks = run_mirograph(workdir / "blocks", args.turns, ["agents.main.retention=blocks"])
        stock = None if args.skip_stock else run_stock(workdir, args.turns)
        stock_pg = None
        if args.postgres and not args.skip_stock:
            stock_pg = run_stock(workdir, args.turns, args.postgres)
    print(
        f"\n{args.turns} turns, one ~8 KB tool result per turn, SQLite, durability=sync;"
        f" mirograph: median of {args.repeat} runs\n"
    )
    print(table(mg, stock, args.turns))
    if pg is not None:
        stock_on = "stock column: the stock PostgresSaver" if stock_pg else "no stock run"
        print(f"\nThe same on PostgreSQL (a fresh database per run; {stock_on}):\n")
        print(table(pg, stock_pg, args.turns))
        print(json.dumps({k: v for k, v in pg.items() if k != "per_turn"}, indent=None))
    if blocks is not None:
        print("\n" + retention_table(mg, blocks))
    print(json.dumps({k: v for k, v in mg.items() if k != "per_turn"}, indent=None))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over repeated runs (per-turn times pooled per turn)."""
    merged: dict[str, Any] = {}
    for key, value in runs[0].items():
        if key == "per_turn":
            merged[key] = {t: p50([r["per_turn"][t] for r in runs]) for t in value}
        elif isinstance(value, (int, float)):
            merged[key] = p50([r[key] for r in runs])
    merged["runs"] = len(runs)
    return merged


def retention_table(keep: dict[str, Any], blocks: dict[str, Any]) -> str:
    """Prefix reuse and prompt size: keep-5 as trained against block elision (5 at a time)."""
    rows = [
        ("prompt share equal to the previous prompt's start, median", "prefix_share", ".3f"),
        ("prompt share equal to the previous prompt's start, mean", "prefix_share_mean", ".3f"),
        ("mean prompt, K chars", "prompt_chars_mean", ".1f"),
        ("prompt tokens, whole run (M)", "prompt_tokens", ".2f"),
        ("server-reported cached tokens (M)", "cached_tokens", ".2f"),
    ]
    scale = {"prompt_chars_mean": 1e3, "prompt_tokens": 1e6, "cached_tokens": 1e6}
    lines = [
        "| retention (K=5) | keep_last (trained) | blocks of 5 | blocks ÷ keep_last |",
        "|---|---|---|---|",
    ]
    for name, key, fmt in rows:
        a, b = keep[key] / scale.get(key, 1), blocks[key] / scale.get(key, 1)
        lines.append(f"| {name} | {a:{fmt}} | {b:{fmt}} | {b / a:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
