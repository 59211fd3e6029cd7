"""Crash run: SIGKILL a 600-turn investigation at random instants, resume after each.

Workload: the `single-agent` flow with keep-5, one `step` tool call per turn,
each result a distinct ~8 KB text, a `sim-model` server over real HTTP (2 ms
per reply by default, so model calls take measurable time), the SQLite store.
The runner is `mirograph run` / `mirograph resume` in a subprocess. It is
killed with SIGKILL once the tool's progress crosses each of `--kills` evenly
spaced targets, plus a random 0-15 ms delay, so the kill lands in a model
call, in a tool or in a checkpoint write. A fresh `mirograph resume` follows
each kill.

At the end it checks: exactly `--turns` turns and tool calls, the history's
tool-call sequence is 1..turns in order (as an uninterrupted run's), every
step ran, and a step ran again only if a kill landed while it was in flight
(logged, but its result not yet checkpointed); and `PRAGMA integrity_check`.

    python -m benchmarks.crash_run [--turns 600] [--kills 20] [--seed 1] [--latency-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The workload is the crash test's own tool and policy, with ~8 KB results.
from tests.support.crash_tools import drain, read_log

#: The repository root: on the runners' PYTHONPATH, for ``tests.support``.
ROOT = Path(__file__).resolve().parents[1]

RUN_ID = "crash"
MAX_DELAY_S = 0.015
PROGRESS_TIMEOUT_S = 120


@dataclass
class Kill:
    target: int
    seen: int  # highest index read from the FIFO before the delay
    delay_ms: float
    log_last: int  # last index in the tool log once the runner was dead
    log_length: int
    where: str  # what the store says was in flight


class Processes:
    """Every child started here, killed on the way out (errors and signals too)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                proc.communicate(timeout=10)


def db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


class Progress:
    """The indices the tool announces on the FIFO, read without polling."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.partial = b""
        self.last = 0

    def wait_until(self, target: int, runner: subprocess.Popen[str]) -> bool:
        """Block until an index >= target is announced (True) or the runner exits (False)."""
        assert runner.stdout is not None
        while self.last < target:
            ready, _, _ = select.select([self.fd, runner.stdout], [], [], PROGRESS_TIMEOUT_S)
            if not ready:
                raise SystemExit(f"no progress in {PROGRESS_TIMEOUT_S} s (runner {runner.poll()})")
            if self.fd in ready:
                self.feed(drain(self.fd))
            if runner.stdout in ready:  # it printed its answer or exited
                return self.last >= target
        return True

    def feed(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            if line.strip():
                self.last = max(self.last, int(line))

    def reset(self) -> None:
        """After a kill: drop what the dead runner wrote; the next one may redo a step."""
        drain(self.fd)
        self.partial = b""
        self.last = 0


async def _read_state(store_url: str) -> dict[str, Any]:
    from mirograph.agents.tools.base import ToolContext
    from mirograph.flows.loader import validate_flow
    from mirograph.graphs.builder import build_flow_graph
    from mirograph.state.store import open_store

    async with open_store(store_url) as store:
        flow = validate_flow(store.registry.get(RUN_ID).flow_spec)
        built = build_flow_graph(
            flow, ToolContext(RUN_ID, Path(tempfile.gettempdir())), store.blobs
        )
        try:
            graph = built.graph.compile(checkpointer=store.checkpointer)
            return (await graph.aget_state({"configurable": {"thread_id": RUN_ID}})).values
        finally:
            await built.aclose()


def tool_sequence(values: dict[str, Any]) -> list[int]:
    from langchain_core.messages import AIMessage

    return [
        int(m.tool_calls[0]["args"]["index"])
        for m in values.get("messages", [])
        if isinstance(m, AIMessage) and m.tool_calls
    ]


def in_flight(store_url: str, log_last: int) -> str:
    """Where the kill landed, from the last committed step and the tool log."""
    from langchain_core.messages import AIMessage, ToolMessage

    values = asyncio.run(_read_state(store_url))
    messages = values.get("messages") or []
    tail = messages[-1] if messages else None
    if values.get("phase") in ("close", "done"):
        return "closing"
    if isinstance(tail, AIMessage) and tail.tool_calls:
        index = int(tail.tool_calls[0]["args"]["index"])
        if index == log_last:
            return "tool"  # ran (or running), result not checkpointed: it runs again
        return "tool start"  # model step committed, tool not logged yet
    if isinstance(tail, ToolMessage):
        return "model"  # the next model call, or its checkpoint write
    return "start"


def start_sim_model(procs: Processes, env: dict[str, str], latency_ms: int) -> str:
    argv = [
        sys.executable,
        "-m",
        "mirograph",
        "sim-model",
        "--policy",
        "tests.support.crash_policy:count",
    ]
    proc = procs.start([*argv, "--port", "0", "--latency-ms", str(latency_ms)], env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+/v1)", line)
    if not match:
        raise SystemExit(f"sim-model did not start: {line!r}")
    return match.group(1)


def crash_run(workdir: Path, args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    db = workdir / "runs.db"
    store = f"sqlite:///{db}"
    log, fifo = workdir / "steps.log", workdir / "progress.fifo"
    os.mkfifo(fifo)
    env = {
        **os.environ,
        "MIROGRAPH_HOME": str(workdir / "home"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "CRASH_RESULT_CHARS": "8000",
        "CRASH_LOG": str(log),
        "CRASH_PIPE": str(fifo),
    }
    base_url = start_sim_model(procs, env, args.latency_ms)
    cli = [sys.executable, "-m", "mirograph"]
    flow = [
        "--flow",
        "single-agent",
        "--set",
        f"models.thinker.base_url={base_url}",
        "--set",
        f"agents.main.max_turns={args.turns}",
        "--set",
        "agents.main.keep_tool_results=5",
        "--set",
        "agents.main.tools=[tests.support.crash_tools:step]",
    ]
    argv = [*cli, "run", "Count the pages.", *flow, "--id", RUN_ID, "--store", store]
    targets = [round(args.turns * (i + 1) / (args.kills + 1)) for i in range(args.kills)]
    rng = random.Random(args.seed)
    # The reader, plus a writer of our own: with no writer left, a FIFO reads
    # as end-of-file and select() would return at once between runners.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keeper = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    progress = Progress(reader)
    kills: list[Kill] = []
    runners = 0
    inspecting = 0.0  # reading the store between kills, in this process
    start = time.perf_counter()
    try:
        for target in targets:
            runner = procs.start(argv, env)
            runners += 1
            argv = [*cli, "resume", RUN_ID, "--store", store]
            if not progress.wait_until(target, runner):
                _, err = runner.communicate(timeout=60)
                if runner.returncode != 0:
                    raise SystemExit(f"runner exited {runner.returncode}: {err[-2000:]}")
                break
            seen = progress.last
            # The random delay chooses the kill instant; it waits for nothing.
            delay = rng.uniform(0, MAX_DELAY_S)
            time.sleep(delay)
            runner.send_signal(signal.SIGKILL)
            runner.communicate(timeout=30)
            progress.reset()
            steps = read_log(log)
            last = steps[-1] if steps else 0
            inspect_start = time.perf_counter()
            where = in_flight(store, last)
            inspecting += time.perf_counter() - inspect_start
            kills.append(Kill(target, seen, delay * 1000, last, len(steps), where))
    finally:
        os.close(keeper)
        os.close(reader)

    final = subprocess.run(
        argv,  # `resume`, or `run` when there were no kills
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    runners += 1
    wall = time.perf_counter() - start
    shown = subprocess.run(
        [*cli, "show", RUN_ID, "--store", store, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(shown.stdout) if shown.returncode == 0 else {}
    values = asyncio.run(_read_state(store))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        integrity = ", ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    return {
        "final": final,
        "report": report,
        "sequence": tool_sequence(values),
        "steps": read_log(log),
        "kills": kills,
        "runners": runners,
        "integrity": integrity,
        "wall_s": wall,
        "inspect_s": inspecting,
        "store_bytes": db_size(db),
    }


def verify(result: dict[str, Any], turns: int) -> tuple[list[str], dict[str, Any]]:
    """The properties of the issue; returns the failures and the figures for the report."""
    failures = []
    final, report, steps, kills = (
        result["final"],
        result["report"],
        result["steps"],
        result["kills"],
    )
    if final.returncode != 0 or final.stdout.strip() != "done":
        failures.append(f"final resume: exit {final.returncode}, {final.stdout!r} {final.stderr!r}")
    agent = report.get("agents", {}).get("main", {})
    if report.get("status") != "completed":
        failures.append(f"status {report.get('status')!r}")
    if (agent.get("turns"), agent.get("tool_calls")) != (turns, turns):
        failures.append(f"turns {agent.get('turns')}, tool calls {agent.get('tool_calls')}")
    if result["sequence"] != list(range(1, turns + 1)):
        failures.append(f"tool-call sequence differs: {result['sequence'][:10]}...")
    runs = Counter(steps)
    if sorted(runs) != list(range(1, turns + 1)):
        failures.append(f"steps missing or extra: {sorted(set(range(1, turns + 1)) ^ set(runs))}")
    # A step may run again only when a kill landed after the log showed it and
    # before its result was checkpointed: the next runner's first step repeats it.
    reran = Counter(
        k.log_last for k in kills if k.log_length < len(steps) and steps[k.log_length] == k.log_last
    )
    extra = {i: n - 1 for i, n in runs.items() if n > 1}
    if extra != dict(reran):
        failures.append(f"repeated steps {extra} != steps in flight at a kill {dict(reran)}")
    in_tool = Counter(k.where for k in kills)
    if in_tool["tool"] != sum(reran.values()):
        failures.append(
            f"store says {in_tool['tool']} kills in a tool, log says {sum(reran.values())}"
        )
    if len(extra) > len(kills):
        failures.append("more repeated steps than kills")
    if result["integrity"] != "ok":
        failures.append(f"integrity_check: {result['integrity']}")
    return failures, {"runs": runs, "extra": extra, "where": in_tool}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=int, default=2)
    args = parser.parse_args()
    # SIGTERM (and Ctrl-C) unwind through the finally blocks: children die with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    procs = Processes()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = crash_run(Path(tmp), args, procs)
    finally:
        procs.close()
    failures, figures = verify(result, args.turns)
    kills, agent = result["kills"], result["report"].get("agents", {}).get("main", {})
    where = ", ".join(f"{n} {w}" for w, n in sorted(figures["where"].items())) or "-"
    extra = figures["extra"]
    print(
        f"\ncrash run: {args.turns} turns, ~8 KB results, keep-5, SQLite, durability=sync, "
        f"sim-model {args.latency_ms} ms/reply, seed {args.seed}\n"
    )
    print("| figure | value |\n|---|---|")
    print(f"| SIGKILLs | {len(kills)} (of {args.kills} planned) |")
    print(f"| runner processes | {result['runners']} |")
    print(f"| kill landed in (from the store) | {where} |")
    print(f"| turns, tool calls (show --json) | {agent.get('turns')}, {agent.get('tool_calls')} |")
    print(f"| tool executions | {len(result['steps'])} |")
    print(f"| steps run twice | {len(extra)}: {sorted(extra)} |")
    in_order = result["sequence"] == list(range(1, args.turns + 1))
    print(f"| tool-call sequence = 1..{args.turns} | {in_order} |")
    print(
        f"| final answer | {result['final'].stdout.strip()!r} (exit {result['final'].returncode}) |"
    )
    print(f"| PRAGMA integrity_check | {result['integrity']} |")
    print(
        f"| wall time, s | {result['wall_s']:.1f} "
        f"(of which {result['inspect_s']:.1f} reading the store between kills) |"
    )
    print(f"| store size, MB | {result['store_bytes'] / 1e6:.2f} |")
    print("\nkills (target, seen, delay ms, last logged, where):")
    print(
        "  "
        + "; ".join(f"{k.target},{k.seen},{k.delay_ms:.1f},{k.log_last},{k.where}" for k in kills)
    )
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        raise SystemExit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
