"""Many investigations at once in one process (issue 14, its economics point).

Workload: N runs started together (``flows.runner.start_run`` under
``asyncio.gather``) on one SQLite store, each one agent that calls a cheap tool
every turn for T turns and then answers the closing request: T + 1 model calls
per run, against a ``mirograph sim-model`` subprocess (so the server's CPU is
not the engine's) with a fixed latency per reply. No restarts.

Ideal wall time: every run takes (T + 1) x latency, all of them at once.
Reported: wall time, ideal, share of ideal, the engine process's CPU time per
turn (``time.process_time`` over N x (T + 1) model calls) and the sim server's
CPU. A small warm-up round (imports, first connections) comes first; each figure
is the median of ``--repeat`` rounds. ``--profile FILE`` adds a round, left out
of the figures, under cProfile, and prints its top functions by cumulative and
by total time.

    python -m benchmarks.many_runs [--runs 64] [--turns 30] [--latency-ms 200]
                                   [--repeat 3] [--profile FILE] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import sim

_WORDS = ["turn", "engine", "model", "tool", "result", "store", "run", "page", "step", "fact"]


# -- what the sim server and the runs import ------------------------------------


def policy(body: dict[str, Any], turns: int = 30) -> str:
    """One ``ping`` call per turn for ``turns`` turns; the closing request is answered."""
    from mirograph.agents.mirothinker.parsing import render_call
    from mirograph.agents.prompts import is_closing_request

    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    if is_closing_request(messages[-1]["content"]) or done >= int(turns):
        return f"All {done} pings answered.</think>\n\nDone. \\boxed{{{done}}}"
    call = render_call("many_runs", "ping", {"index": done + 1})
    return f"Ping {done + 1} next.</think>\n\nPinging.\n\n{call}"


def ping(index: int) -> str:
    """Return a short distinct text for step `index`."""
    rng = random.Random(index)
    return f"Pong {index}: " + " ".join(rng.choice(_WORDS) for _ in range(60))


# -- the benchmark ----------------------------------------------------------------


def start_sim_model(turns: int, latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    policy = f"benchmarks.many_runs:policy?turns={turns}"
    return sim.start_sim_model(policy, "--latency-ms", str(latency_ms))


def cpu_of(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(
    workdir: Path, base_url: str, args: argparse.Namespace, profile: cProfile.Profile | None
) -> dict[str, float]:
    from mirograph.flows.loader import load_flow
    from mirograph.flows.runner import start_run

    workdir.mkdir(parents=True)
    os.environ["MIROGRAPH_HOME"] = str(workdir / "home")
    store = f"sqlite:///{workdir / 'runs.db'}"
    flow = load_flow(
        "single-agent",
        [
            f"models.thinker.base_url={base_url}",
            f"agents.main.max_turns={args.turns}",
            "agents.main.max_restarts=0",
            "agents.main.tools=[benchmarks.many_runs:ping]",
        ],
    )

    async def all_runs() -> list[Any]:
        runs = [
            start_run(f"Ping {args.turns} times.", flow, run_id=f"run-{i}", store_url=store)
            for i in range(args.runs)
        ]
        return await asyncio.gather(*runs)

    server_before = cpu_of(args.server_pid)
    cpu_before, start = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
        outcomes = runner.run(all_runs())
    if profile is not None:
        profile.disable()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_before
    server_after = cpu_of(args.server_pid)
    bad = [o for o in outcomes if o.status != "completed"]
    assert not bad, bad[:3]
    if args.check:
        asyncio.run(check_turns(store, args))
    ideal = (args.turns + 1) * args.latency_ms / 1000
    calls = args.runs * (args.turns + 1)
    return {
        "wall_s": wall,
        "ideal_s": ideal,
        "share_of_ideal": ideal / wall,
        "cpu_s": cpu,
        "cpu_ms_per_turn": cpu / calls * 1000,
        "server_cpu_s": (
            server_after - server_before
            if server_after is not None and server_before is not None
            else float("nan")
        ),
    }


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the runs share: asyncio's own, or uvloop's (to measure what a
    faster loop would give a worker; the CLI runs on asyncio's)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


async def check_turns(store: str, args: argparse.Namespace) -> None:
    from mirograph.flows.runner import run_report

    for i in range(args.runs):
        report = await run_report(f"run-{i}", store_url=store)
        main = report["agents"]["main"]
        expected = (args.turns, args.turns, args.turns + 1, 0)
        assert (
            main["turns"],
            main["tool_calls"],
            main["model_calls"],
            main["slip_repairs"],
        ) == expected, main


def print_profile(profile: cProfile.Profile, path: str, top: int = 25) -> None:
    profile.dump_stats(path)
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        text = out.getvalue()
        body = text[text.find("   ncalls") :]
        print(f"\n-- profile: top {top} by {key} ({path}) --\n{body.rstrip()}")


def report_round(name: str, r: dict[str, float]) -> None:
    print(
        f"{name}: wall {r['wall_s']:.2f} s, {r['share_of_ideal']:.1%} of ideal,"
        f" CPU {r['cpu_ms_per_turn']:.2f} ms/turn, server CPU {r['server_cpu_s']:.2f} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=64, help="investigations at once (N)")
    parser.add_argument("--turns", type=int, default=30, help="tool turns per run (T)")
    parser.add_argument("--latency-ms", type=int, default=200, help="sim-model delay per reply")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--check", action="store_true", help="check every run's turn counts")
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="the runs' event loop"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the last round into FILE")
    args = parser.parse_args()

    proc, base_url = start_sim_model(args.turns, args.latency_ms)
    args.server_pid = proc.pid
    rounds = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            warm = argparse.Namespace(**{**vars(args), "runs": 2})
            one_round(Path(tmp) / "warm-up", base_url, warm, None)
            for i in range(args.repeat):
                rounds.append(one_round(Path(tmp) / f"round-{i}", base_url, args, None))
                report_round(f"round {i + 1}", rounds[-1])
            if args.profile:  # an extra round: the profiler's overhead stays out of the figures
                # CPU time, not wall time: on a shared machine a function preempted
                # mid-call (a send that wakes the server) would be charged for the wait.
                profile = cProfile.Profile(time.process_time)
                report_round("profiled", one_round(Path(tmp) / "profiled", base_url, args, profile))
    finally:
        proc.terminate()
        proc.wait()
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(
        f"\n{args.runs} runs at once x {args.turns} tool turns + answer, sim-model at"
        f" {args.latency_ms} ms, SQLite, {args.loop} loop; median of {args.repeat} rounds" + "\n"
    )
    print("| figure | value |\n|---|---|")
    print(f"| wall time, s | {med['wall_s']:.2f} |")
    print(f"| ideal ((T+1) x latency), s | {med['ideal_s']:.2f} |")
    print(f"| share of ideal | {med['share_of_ideal']:.1%} |")
    print(f"| engine process CPU, s | {med['cpu_s']:.2f} |")
    print(f"| engine CPU per turn (model call), ms | {med['cpu_ms_per_turn']:.2f} |")
    print(f"| sim-model server CPU, s | {med['server_cpu_s']:.2f} |")
    if args.profile:
        print_profile(profile, args.profile)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
