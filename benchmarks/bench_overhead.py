"""What ``mirograph bench`` adds per task beyond the runs themselves (issue 15).

Side by side, in one process, against one ``mirograph sim-model`` subprocess
(many_runs's ping policy: T tool turns, then the answer ``T``):

- **runs alone**: N ``start_run`` calls, ``--concurrency`` at once, on a store of
  their own: what any harness must spend;
- **bench**: the same N questions as a standardized JSONL, through
  ``flows.bench.session.run_bench`` (K = 1, exact judge) on another store: the
  same runs plus the bench's own work (reading the registry per attempt, the
  run report, judging, a synced ``results.jsonl`` line, summary, compatible
  files and both plots at the end).

Overhead per task = (bench wall - runs-alone wall) / N. Rounds alternate the two
and the figures are medians; a warm-up round of each comes first.

    python -m benchmarks.bench_overhead [--tasks 40] [--turns 3] [--concurrency 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import sim
from benchmarks.fleet_throughput import flow as ping_flow

if TYPE_CHECKING:
    pass


def runs_alone(workdir: Path, base_url: str, args: argparse.Namespace) -> float:
    from mirograph.flows.runner import start_run

    os.environ["MIROGRAPH_HOME"] = str(workdir / "home")
    flow = ping_flow(base_url, args.turns)
    store = f"sqlite:///{workdir / 'runs.db'}"

    async def all_runs() -> None:
        gate = asyncio.Semaphore(args.concurrency)

        async def one(i: int) -> None:
            async with gate:
                done = await start_run(_question(i), flow, run_id=f"r{i}", store_url=store)
                assert done.status == "completed", done

        await asyncio.gather(*(one(i) for i in range(args.tasks)))

    start = time.perf_counter()
    asyncio.run(all_runs())
    return time.perf_counter() - start


def bench(workdir: Path, base_url: str, args: argparse.Namespace) -> float:
    from mirograph.flows.bench.datasets import load_dataset
    from mirograph.flows.bench.harness import BenchSettings
    from mirograph.flows.bench.judges.exact import ExactJudge
    from mirograph.flows.bench.session import run_bench

    os.environ["MIROGRAPH_HOME"] = str(workdir / "home")
    data = workdir / "data" / "standardized_data.jsonl"
    data.parent.mkdir(parents=True)
    rows = [
        {"task_id": f"t{i}", "task_question": _question(i), "ground_truth": str(args.turns)}
        for i in range(args.tasks)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    flow = ping_flow(base_url, args.turns)
    start = time.perf_counter()  # the dataset read is the bench's own work
    settings = BenchSettings(
        dataset=load_dataset(data),
        flow_name="single-agent",
        flow=flow,
        runs=1,
        concurrency=args.concurrency,
        judge=ExactJudge(),
        out=workdir / "out",
        store_url=f"sqlite:///{workdir / 'runs.db'}",
    )
    report = asyncio.run(run_bench(settings, say=lambda _line: None))
    wall = time.perf_counter() - start
    assert not report.outcome.unfinished, report.outcome.unfinished[:2]
    assert report.summary["avg_at_k"] == 1.0, report.summary
    return wall


def _question(i: int) -> str:
    return f"Task {i}: ping until done, then say how many pings you made."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--turns", type=int, default=3, help="tool turns per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    proc, base_url = sim.start_sim_model(f"benchmarks.many_runs:policy?turns={args.turns}")
    alone: list[float] = []
    benched: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            warm = argparse.Namespace(**{**vars(args), "tasks": 2})
            runs_alone(root / "warm-alone", base_url, warm)
            bench(root / "warm-bench", base_url, warm)
            for i in range(args.repeat):
                alone.append(runs_alone(root / f"alone-{i}", base_url, args))
                benched.append(bench(root / f"bench-{i}", base_url, args))
                print(f"round {i + 1}: runs alone {alone[-1]:.2f} s, bench {benched[-1]:.2f} s")
    finally:
        proc.terminate()
        proc.wait()
    a, b = statistics.median(alone), statistics.median(benched)
    print(
        f"\n{args.tasks} tasks x {args.turns} tool turns + answer, {args.concurrency} at once,"
        f" sim-model without latency, SQLite; median of {args.repeat} rounds\n"
    )
    print("| figure | runs alone | bench | bench ÷ alone |\n|---|---|---|---|")
    print(f"| wall, s | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    print(f"| per task, ms | {a / args.tasks * 1000:.1f} | {b / args.tasks * 1000:.1f} | |")
    print(f"\nharness overhead per task: {(b - a) / args.tasks * 1000:.1f} ms")


if __name__ == "__main__":
    main()
