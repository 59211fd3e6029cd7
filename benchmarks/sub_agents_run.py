"""The same 600 tool turns, run by one agent or spread over sub-agents.

Workload: ~8 KB distinct tool results, SQLite store, sync durability, a
``sim-model`` server over real HTTP (optionally with latency per request).
- **single:** one agent, 600 turns (as ``long_run.py``);
- **sub-agents, one at a time:** a planner hands 6 sub-tasks to a worker
  sub-agent, one per reply; each worker makes 100 tool calls;
- **sub-agents, in parallel:** the same 6 sub-tasks, 3 per reply.

Engine time per turn (between two model calls, minus the tool's time) is
compared for the worker turns against the single agent's turns. State load
of a run stopped inside a sub-agent is timed in a fresh process.

    python -m benchmarks.sub_agents_run [--repeat 3] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import bench_tools
from benchmarks.long_run import ROOT, ModelClock, db_size, p50

TURNS, PARTS = 600, 6


class Clock(ModelClock):
    """Model calls and tool runs, as intervals. Model calls are timed by
    ``long_run``'s wrapper, around both ways a call leaves (the SDK's ``post`` and
    the engine's own ``wire.Poster.post_json``, which sends them since 29406dc)."""

    def __init__(self) -> None:
        super().__init__()
        self.tools = bench_tools.INTERVALS  # the tool records its own runs

    @property
    def model(self) -> list[tuple[float, float]]:
        return self.calls

    def observe(self, messages: list[dict[str, Any]]) -> None:
        """No prompt-prefix tally here: its cost would land in the engine's gaps."""

    def engine_ms(self) -> list[float]:
        """Per gap between consecutive model calls that one tool run fills: engine time."""
        gaps = []
        calls = sorted(self.model)
        tools = sorted(self.tools)
        t = 0
        for (_, end), (start, _) in itertools.pairwise(calls):
            inside = []
            while t < len(tools) and tools[t][0] < start:
                if tools[t][0] >= end:
                    inside.append(tools[t])
                t += 1
            if len(inside) == 1:
                gaps.append((start - end - (inside[0][1] - inside[0][0])) * 1000)
        return gaps


def start_sim(policy: str, latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    argv = [sys.executable, "-m", "mirograph", "sim-model", "--port", "0", "--policy", policy]
    if latency_ms:
        argv += ["--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    match = re.search(r"(http://\S+/v1)", proc.stdout.readline())
    if not match:
        proc.kill()
        raise SystemExit("sim-model did not start")
    return proc, match.group(1)


def flow_spec(base_url: str, shape: str) -> dict[str, Any]:
    model = {"base_url": base_url, "max_tokens": 512}
    tools = ["benchmarks.bench_tools:distinct_text"]
    if shape == "single":
        agents = {"main": {"model": "m", "max_turns": TURNS, "tools": tools}}
        return {"name": "bench-single", "models": {"m": model}, "agents": agents, "entry": "main"}
    agents = {
        "planner": {"model": "m", "role": "main", "max_turns": 20, "sub_agents": ["worker"]},
        "worker": {"model": "m", "max_turns": TURNS // PARTS, "tools": tools},
    }
    return {"name": f"bench-{shape}", "models": {"m": model}, "agents": agents, "entry": "planner"}


DELEGATING = f"benchmarks.bench_policy:delegating?parts={PARTS}&turns={TURNS // PARTS}"
POLICIES = {
    "single": f"benchmarks.bench_policy:long_run?turns={TURNS}",
    "one at a time": f"{DELEGATING}&parallel=1",
    "in parallel": f"{DELEGATING}&parallel=3",
}


def run(workdir: Path, shape: str, latency_ms: int, clock: Clock) -> dict[str, Any]:
    from mirograph.flows.loader import validate_flow
    from mirograph.flows.runner import run_report, start_run

    workdir.mkdir(parents=True)
    os.environ["MIROGRAPH_HOME"] = str(workdir / "home")
    proc, base_url = start_sim(POLICIES[shape], latency_ms)
    store = f"sqlite:///{workdir / 'runs.db'}"
    clock.reset()
    clock.tools.clear()
    try:
        flow = validate_flow(flow_spec(base_url, "single" if shape == "single" else "team"))
        start = time.perf_counter()
        outcome = asyncio.run(start_run("Read every page.", flow, run_id="b", store_url=store))
        wall = time.perf_counter() - start
        report = asyncio.run(run_report("b", store_url=store))
    finally:
        proc.terminate()
        proc.wait()
    assert outcome.status == "completed", outcome
    tool_calls = sum(a["tool_calls"] for name, a in report["agents"].items() if name != "planner")
    assert tool_calls == TURNS - (1 if shape == "single" else PARTS), report["agents"]
    engine = clock.engine_ms()
    return {
        "wall_s": wall,
        "store_mb": db_size(workdir / "runs.db") / 1e6,
        "engine_p50": p50(engine),
        "engine_p90": statistics.quantiles(engine, n=10)[-1],
        "model_calls": len(clock.model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=0, help="sim-model latency per request")
    args = parser.parse_args()
    clock = Clock()
    clock.install()
    results: dict[str, list[dict[str, Any]]] = {shape: [] for shape in POLICIES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for shape in POLICIES:  # interleaved, so drift on a noisy machine hits all alike
                results[shape].append(
                    run(Path(tmp) / f"{shape}-{i}", shape, args.latency_ms, clock)
                )
    med = {s: {k: p50([r[k] for r in rs]) for k in rs[0]} for s, rs in results.items()}
    base = med["single"]
    print(
        f"\n{TURNS} tool turns, ~8 KB results, SQLite, sync; sim-model latency"
        f" {args.latency_ms} ms; median of {args.repeat} runs\n"
    )
    print("| figure | " + " | ".join(POLICIES) + " |")
    print("|---|" + "---|" * len(POLICIES))
    rows = [
        ("wall time, s", "wall_s", ".2f"),
        ("store, MB", "store_mb", ".2f"),
        ("engine ms per tool turn, p50", "engine_p50", ".2f"),
        ("engine ms per tool turn, p90", "engine_p90", ".2f"),
        ("model calls", "model_calls", ".0f"),
    ]
    for label, key, fmt in rows:
        cells = [format(med[s][key], fmt) for s in POLICIES]
        print(f"| {label} | " + " | ".join(cells) + " |")
    ratios = {s: med[s]["wall_s"] / base["wall_s"] for s in POLICIES}
    print("| wall ÷ single | " + " | ".join(f"{ratios[s]:.2f}" for s in POLICIES) + " |")
    print(json.dumps(med))


if __name__ == "__main__":
    main()
