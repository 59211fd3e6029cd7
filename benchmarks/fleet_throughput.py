"""Many investigations on a fleet of workers (issue 14, its economics point).

Workload: W ``mirograph worker`` processes (``--concurrency C``, C = N / W by
default) on a PostgreSQL store and a Redis broker of their own (started here,
as the tests start theirs), and N runs handed to them at once with
``submit_runs`` (``--submit each``: ``submit_run`` for each, one after another),
each one agent that calls a cheap tool every turn for T turns and then answers
the closing request (``many_runs``'s policy and tool): T + 1 model calls per
run, against a ``mirograph sim-model`` subprocess with a fixed latency per reply.

Ideal wall time: every run takes (T + 1) x latency, all of them at once. Timed
from the first submit until the registry says every run completed (polled every
``--poll-s``). Reported: wall time, ideal, share of ideal, the submission's
time, when the runs started and how long each took (from the registry), CPU
seconds of each worker process (its whole session, from /proc) and per turn,
of PostgreSQL (the cluster's processes) and the sim-model server, and how busy
the whole machine's CPUs were (everyone's processes: a shared machine). A small
warm-up round (imports, first connections) comes first; each figure is the
median of ``--repeat`` rounds.

    python -m benchmarks.fleet_throughput [--runs 128] [--turns 20] [--workers 2]
        [--concurrency C] [--latency-ms 1000] [--repeat 3] [--submit batch|each]
        [--poll-s 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks import many_runs, sim

ROOT = Path(__file__).resolve().parents[1]
#: How long a worker may take to say it is ready.
READY_S = 120.0


# -- processes ----------------------------------------------------------------------


class Worker:
    """``mirograph worker`` in a session of its own; its log collected as it comes."""

    def __init__(self, home: Path, store: str, broker: str, concurrency: int) -> None:
        env = {
            k: v for k, v in os.environ.items() if k not in ("MIROGRAPH_STORE", "MIROGRAPH_BROKER")
        }
        env["MIROGRAPH_HOME"] = str(home)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "mirograph", "worker", "--store", store]
        command += ["--broker", broker, "--concurrency", str(concurrency)]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_S
        while not any(" ready." in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"a worker did not start:\n{''.join(self.lines)[-3000:]}")
            time.sleep(0.1)  # between looks at its log, for the line that says it is ready

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, every core (/proc/stat)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def group_cpu(*, session: int | None = None, group: int | None = None) -> float:
    """CPU seconds (user + system, with reaped children's) of every live process in
    ``session`` or process ``group`` (Linux /proc)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # After the comm: state ppid pgrp session ... utime(11) stime(12) cutime(13) cstime(14)
        if fields is None or (session, group) == (None, None):
            continue
        if session is not None and int(fields[3]) != session:
            continue
        if group is not None and int(fields[2]) != group:
            continue
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


# -- one round ----------------------------------------------------------------------


def flow(base_url: str, turns: int) -> Any:
    from mirograph.flows.loader import load_flow

    return load_flow(
        "single-agent",
        [
            f"models.thinker.base_url={base_url}",
            f"agents.main.max_turns={turns}",
            "agents.main.max_restarts=0",
            "agents.main.tools=[benchmarks.many_runs:ping]",
        ],
    )


def counts(conn: Any, prefix: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM mirograph_runs WHERE id LIKE %s GROUP BY status",
        (f"{prefix}%",),
    ).fetchall()
    return {status: n for status, n in rows}


def one_round(
    name: str, runs: int, turns: int, args: argparse.Namespace, env: dict[str, Any]
) -> dict[str, float]:
    """Submit ``runs`` runs of ``turns`` tool turns, wait until all completed; figures."""
    import psycopg

    from mirograph.flows.workers.submit import submit_run, submit_runs

    store, broker = env["store"], env["broker"]
    spec = flow(env["base_url"], turns)
    prefix = f"{name}-"
    cpu_before = cpus(env)

    questions, ids = [f"Ping {turns} times."] * runs, [f"{prefix}{i}" for i in range(runs)]

    async def submit_all() -> None:
        if args.submit == "batch":
            await submit_runs(questions, spec, run_ids=ids, store_url=store, broker_url=broker)
            return
        for question, run_id in zip(questions, ids, strict=True):
            await submit_run(question, spec, run_id=run_id, store_url=store, broker_url=broker)

    start = time.perf_counter()
    asyncio.run(submit_all())
    submitted = time.perf_counter() - start
    deadline = start + max(120.0, 20 * (turns + 1) * args.latency_ms / 1000)
    with psycopg.connect(store, autocommit=True) as conn:
        while (seen := counts(conn, prefix)).get("completed", 0) < runs:
            ended = {s: n for s, n in seen.items() if s not in ("queued", "running", "completed")}
            if ended or time.perf_counter() > deadline:
                raise SystemExit(f"round {name}: runs ended otherwise or too late: {seen}")
            time.sleep(args.poll_s)  # the registry polled, not too often (it is measured)
        wall = time.perf_counter() - start
        rows = conn.execute(
            "SELECT created_at, session_started_at, updated_at, pid FROM mirograph_runs"
            " WHERE id LIKE %s",
            (f"{prefix}%",),
        ).fetchall()
    cpu_after = cpus(env)
    first = min(created for created, _, _, _ in rows)
    waits = [started - first for _, started, _, _ in rows]
    takes = [updated - started for _, started, updated, _ in rows]
    ideal = (turns + 1) * args.latency_ms / 1000
    calls = runs * (turns + 1)
    pids = [pid for _, _, _, pid in rows]
    # The model calls each worker made (its runs': the registry says whose they were).
    made = {
        f"worker{i + 1}": pids.count(w.proc.pid) * (turns + 1) for i, w in enumerate(env["workers"])
    }
    figures = {
        "wall_s": wall,
        "ideal_s": ideal,
        "share_of_ideal": ideal / wall,
        "submit_s": submitted,
        "last_start_s": max(waits),
        "run_p50_s": statistics.median(takes),
        "run_max_s": max(takes),
    }
    busy = cpu_after.pop("machine") - cpu_before.pop("machine")
    every = cpu_after.pop("machine_all") - cpu_before.pop("machine_all")
    figures["machine_busy"] = busy / every if every else float("nan")
    figures["ours_cpu_s"] = sum(cpu_after[k] - cpu_before[k] for k in cpu_before)
    figures["others_cpu_s"] = busy - figures["ours_cpu_s"]
    for key in cpu_before:
        used = cpu_after[key] - cpu_before[key]
        figures[f"{key}_cpu_s"] = used
        figures[f"{key}_ms_per_turn"] = used / max(made.get(key, calls), 1) * 1000
    for key, n in made.items():
        figures[f"{key}_runs"] = n / (turns + 1)
    return figures


def cpus(env: dict[str, Any]) -> dict[str, float]:
    """CPU seconds so far: each worker's session, PostgreSQL's group, the sim server."""
    figures = {
        f"worker{i + 1}": group_cpu(session=w.proc.pid) for i, w in enumerate(env["workers"])
    }
    figures["postgres"] = group_cpu(group=env["postgres_pid"])
    figures["sim"] = many_runs.cpu_of(env["sim_pid"]) or 0.0
    figures["benchmark"] = time.process_time()
    figures["machine"], figures["machine_all"] = machine_cpu()
    return figures


# -- servers ------------------------------------------------------------------------


@contextmanager
def servers(tmp: Path) -> Iterator[tuple[Any, Any]]:
    """A PostgreSQL and a Redis server of the tests' kind, in ``tmp``."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from support.servers import PostgresServer, RedisServer, serving
    except ImportError as exc:
        raise SystemExit(f"cannot start a throwaway PostgreSQL and Redis ({exc})") from None
    with (
        serving(lambda: PostgresServer(tmp)) as postgres,
        serving(lambda: RedisServer(tmp, persistent=False)) as redis,
    ):
        yield postgres, redis


def report_round(name: str, r: dict[str, float], workers: int) -> None:
    cpu = ", ".join(f"{r[f'worker{i + 1}_cpu_s']:.1f}" for i in range(workers))
    print(
        f"{name}: wall {r['wall_s']:.2f} s, {r['share_of_ideal']:.1%} of ideal, submit"
        f" {r['submit_s']:.2f} s, last start {r['last_start_s']:.2f} s, run p50"
        f" {r['run_p50_s']:.2f} / max {r['run_max_s']:.2f} s, worker CPU {cpu} s,"
        f" PostgreSQL {r['postgres_cpu_s']:.1f} s, sim {r['sim_cpu_s']:.1f} s, machine busy"
        f" {r['machine_busy']:.0%} (others {r['others_cpu_s']:.1f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=128, help="runs submitted at once (N)")
    parser.add_argument("--turns", type=int, default=20, help="tool turns per run (T)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (W)")
    parser.add_argument("--concurrency", type=int, help="runs at once per worker (N / W)")
    parser.add_argument("--latency-ms", type=int, default=1000, help="sim-model delay per reply")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument(
        "--submit",
        choices=["batch", "each"],
        default="batch",
        help="submit_runs once for all runs, or submit_run for each",
    )
    parser.add_argument("--poll-s", type=float, default=0.5, help="registry poll interval")
    args = parser.parse_args()
    if min(args.runs, args.turns, args.workers, args.latency_ms, args.repeat) < 1:
        parser.error("--runs, --turns, --workers, --latency-ms and --repeat must be positive")
    concurrency = args.concurrency or -(-args.runs // args.workers)

    proc, base_url = sim.start_sim_model(
        f"benchmarks.many_runs:policy?turns={args.turns}", "--latency-ms", str(args.latency_ms)
    )
    rounds = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        stack.callback(proc.wait)
        stack.callback(proc.terminate)
        postgres, redis = stack.enter_context(servers(Path(tmp)))
        workers = [
            Worker(Path(tmp) / f"worker{i + 1}", postgres.url, redis.url, concurrency)
            for i in range(args.workers)
        ]
        for worker in reversed(workers):
            stack.callback(worker.stop)
        for worker in workers:
            worker.wait_ready()
        pids = ", ".join(str(w.proc.pid) for w in workers)
        print(f"workers ready (pids {pids}), PostgreSQL pid {postgres.pid}", flush=True)
        env = {
            "store": postgres.url,
            "broker": redis.url,
            "base_url": base_url,
            "workers": workers,
            "postgres_pid": postgres.pid,
            "sim_pid": proc.pid,
        }
        one_round("warm-up", 2 * args.workers, 1, args, env)
        for i in range(args.repeat):
            rounds.append(one_round(f"round{i + 1}", args.runs, args.turns, args, env))
            report_round(f"round {i + 1}", rounds[-1], args.workers)
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(
        f"\n{args.runs} runs submitted at once x {args.turns} tool turns + answer,"
        f" {args.workers} workers x concurrency {concurrency}, sim-model at"
        f" {args.latency_ms} ms, PostgreSQL store, Redis broker, submitted"
        f" {'at once (submit_runs)' if args.submit == 'batch' else 'one by one (submit_run)'};"
        " median of"
        f" {args.repeat} rounds\n"
    )
    print("| figure | value |\n|---|---|")
    print(f"| wall time (first submit to last completed), s | {med['wall_s']:.2f} |")
    print(f"| ideal ((T+1) x latency), s | {med['ideal_s']:.2f} |")
    print(f"| share of ideal | {med['share_of_ideal']:.1%} |")
    print(f"| submitting all runs, s | {med['submit_s']:.2f} |")
    print(f"| last run's start after the first submit, s | {med['last_start_s']:.2f} |")
    print(f"| one run's time, p50 / max, s | {med['run_p50_s']:.2f} / {med['run_max_s']:.2f} |")
    for i in range(args.workers):
        key = f"worker{i + 1}"
        print(f"| worker {i + 1} CPU, s | {med[f'{key}_cpu_s']:.2f} |")
        print(f"| worker {i + 1} runs | {med[f'{key}_runs']:.0f} |")
        print(f"| worker {i + 1} CPU per turn (model call), ms | {med[f'{key}_ms_per_turn']:.2f} |")
    print(f"| PostgreSQL CPU, s (ms per turn) | {med['postgres_cpu_s']:.2f}"
          f" ({med['postgres_ms_per_turn']:.2f}) |")  # fmt: skip
    print(f"| sim-model server CPU, s | {med['sim_cpu_s']:.2f} |")
    print(f"| benchmark process CPU (submit, polls), s | {med['benchmark_cpu_s']:.2f} |")
    print(
        f"| machine's CPUs busy ({os.cpu_count()} cores, everyone's) | {med['machine_busy']:.0%} |"
    )
    print(f"| CPU of other processes on the machine, s | {med['others_cpu_s']:.2f} |")


if __name__ == "__main__":
    main()
