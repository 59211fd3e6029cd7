"""Crash test: SIGKILL the runner at 20 random instants, resume after each.

A 40-turn run with a custom tool is killed with SIGKILL at random instants (in
a model call, in a tool, in a checkpoint write) and resumed by a fresh
``mirograph resume`` after each kill. At the end: exactly 40 turns, the same
tool-call sequence as an uninterrupted run, no completed turn repeated (only
the turn in flight at a kill may run again), and ``PRAGMA integrity_check`` ok.

The full-size scenario (600 turns, ~8 KB results) is ``benchmarks/crash_run.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.crash_tools import drain, read_log
from support.testkit import Cli

RUN_ID = "crash"
TURNS = 40
KILLS = 20
SEED = 1234
MAX_DELAY_S = 0.015
PROGRESS_TIMEOUT_S = 60


@dataclass
class Kill:
    delay_ms: float
    #: Lines in the tool log once the killed runner was dead.
    log_length: int


def write_flow(path: Path, base_url: str) -> Path:
    flow = {
        "name": "crash-count",
        "models": {"thinker": {"base_url": base_url, "max_retries": 2, "max_tokens": 512}},
        "agents": {
            "main": {
                "model": "thinker",
                "max_turns": TURNS,
                "keep_tool_results": 5,
                "tools": ["support.crash_tools:step"],
            }
        },
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


def wait_for_progress(fd: int, runner: subprocess.Popen[str]) -> bool:
    """Block until the runner reports a step on the FIFO (True) or exits (False).

    The runner's stdout becomes readable when it prints its answer or exits,
    so one ``select`` covers both without polling.
    """
    assert runner.stdout is not None
    while True:
        ready, _, _ = select.select([fd, runner.stdout], [], [], PROGRESS_TIMEOUT_S)
        assert ready, f"no progress in {PROGRESS_TIMEOUT_S} s; runner exit={runner.poll()}"
        if runner.stdout in ready:
            return False
        if drain(fd):
            return True


def final_tool_sequence(store_url: str) -> list[int]:
    """The ``step`` indices of every assistant tool call in the stored history, in order."""
    from langchain_core.messages import AIMessage

    from mirograph.agents.tools.base import ToolContext
    from mirograph.flows.loader import validate_flow
    from mirograph.graphs.builder import build_flow_graph
    from mirograph.state.store import open_store

    async def read() -> list[int]:
        async with open_store(store_url) as store:
            flow = validate_flow(store.registry.get(RUN_ID).flow_spec)
            built = build_flow_graph(flow, ToolContext(RUN_ID, Path("/nonexistent")), store.blobs)
            try:
                graph = built.graph.compile(checkpointer=store.checkpointer)
                state = await graph.aget_state({"configurable": {"thread_id": RUN_ID}})
            finally:
                await built.aclose()
        return [
            int(m.tool_calls[0]["args"]["index"])
            for m in state.values["messages"]
            if isinstance(m, AIMessage) and m.tool_calls
        ]

    return asyncio.run(read())


@pytest.mark.timeout(300)
def test_twenty_sigkills_at_random_instants_then_resume(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    base_url = sim_model("support.crash_policy:count", "--latency-ms", "2")
    flow = write_flow(tmp_path / "flow.yaml", base_url)
    log, fifo = tmp_path / "steps.log", tmp_path / "progress.fifo"
    os.mkfifo(fifo)
    env = {"CRASH_LOG": str(log), "CRASH_PIPE": str(fifo)}
    rng = random.Random(SEED)
    # The reader, plus a writer of our own: with no writer left, a FIFO reads
    # as end-of-file and select() would return at once between runners.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keeper = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    argv = ["run", "Count the steps.", "--flow", str(flow), "--id", RUN_ID, "--store", cli.store]
    kills: list[Kill] = []
    runner: subprocess.Popen[str] | None = None
    started = time.monotonic()
    try:
        for _ in range(KILLS):
            runner = cli.popen(*argv, env=env)
            argv = ["resume", RUN_ID, "--store", cli.store]
            if not wait_for_progress(reader, runner):
                _, err = runner.communicate(timeout=60)
                assert runner.returncode == 0, err
                break
            # The random delay chooses the kill instant (in a model call, a tool,
            # a checkpoint write); it is not waiting for anything to happen.
            delay = rng.uniform(0, MAX_DELAY_S)
            time.sleep(delay)
            runner.send_signal(signal.SIGKILL)
            runner.communicate(timeout=30)
            drain(reader)  # lines the dead runner wrote after the one we saw
            kills.append(Kill(delay * 1000, len(read_log(log))))
            runner = None
    finally:
        if runner is not None and runner.poll() is None:
            runner.kill()
            runner.communicate()
        os.close(keeper)
        os.close(reader)

    final = cli("resume", RUN_ID, "--store", cli.store, env=env)
    elapsed = time.monotonic() - started
    assert final.returncode == 0, final.stderr
    assert final.stdout.strip() == "done"

    shown = cli("show", RUN_ID, "--store", cli.store, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["status"] == "completed"
    main = report["agents"]["main"]
    assert (main["turns"], main["tool_calls"]) == (TURNS, TURNS)

    # The tool log: every step ran; a step ran again only when a kill landed
    # after the log showed it but before its result was checkpointed.
    steps = read_log(log)
    runs = Counter(steps)
    assert sorted(runs) == list(range(1, TURNS + 1))
    in_flight = [
        k
        for k in kills
        if k.log_length < len(steps) and steps[k.log_length] == steps[k.log_length - 1]
    ]
    reruns = Counter(steps[k.log_length - 1] for k in in_flight)
    assert {i: n - 1 for i, n in runs.items() if n > 1} == dict(reruns)
    duplicated = sorted(i for i, n in runs.items() if n > 1)
    assert len(duplicated) <= len(kills)

    # The history holds the uninterrupted run's tool-call sequence.
    assert final_tool_sequence(cli.store) == list(range(1, TURNS + 1))

    db = Path(cli.store.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    print(
        f"\ncrash test: {len(kills)} SIGKILLs in {elapsed:.1f} s "
        f"(delays {min((k.delay_ms for k in kills), default=0):.1f}-"
        f"{max((k.delay_ms for k in kills), default=0):.1f} ms); "
        f"{len(in_flight)} while a tool was in flight (its result not checkpointed), "
        f"{len(kills) - len(in_flight)} elsewhere (a model call or its checkpoint write, "
        "or before a tool started); "
        f"steps run twice: {duplicated}; max runs of one step: {max(runs.values())}; "
        f"{len(steps)} tool executions for {TURNS} turns"
    )
