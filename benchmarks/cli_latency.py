"""How fast the CLI answers: `--help`, `ls`, `show`, and `resume` up to its first model request.

Users type these commands all day and scripts call them in loops, so each is
timed in a fresh process, as a user runs it (the `mirograph` script of this
environment), median of ``--repeat`` runs.

- ``--help``, ``ls``, ``show``: wall time of the whole process, against a store
  holding one completed two-agent run.
- ``resume``: from process start to the moment the simulated model server
  receives the run's first chat request. Each repeat resumes its own paused run
  (created against a port where nothing listened yet; the server then starts on
  that port).

    python -m benchmarks.cli_latency [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from mirograph.agents.sim.policies import answer
from mirograph.agents.sim.server import SimServer

TARGETS_S = {"--help": 0.3, "ls": 0.3, "show": 0.3, "resume → first request": 0.5}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_flow(path: Path, base_url: str) -> Path:
    flow = {
        "name": "latency",
        "models": {"m": {"base_url": base_url, "max_tokens": 256, "max_retries": 0}},
        "agents": {"main": {"model": "m", "max_turns": 5}},
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


class FirstRequests:
    """A policy that answers at once and records when each request arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.arrivals.append(time.perf_counter())
        return answer(body, "42")

    def first_after(self, start: float) -> float | None:
        with self._lock:
            later = [t for t in self.arrivals if t >= start]
        return min(later) if later else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("mirograph"))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {**os.environ, "MIROGRAPH_HOME": str(home)}
        port = free_port()
        flow = write_flow(home / "flow.yaml", f"http://127.0.0.1:{port}/v1")

        def cli(*argv: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
            done = subprocess.run([exe, *argv], env=env, capture_output=True, text=True)
            if check is not None and done.returncode != check:
                raise SystemExit(f"`mirograph {' '.join(argv)}` exited {done.returncode}:"
                                 f" {done.stderr.strip()[-500:]}")  # fmt: skip
            return done

        # Paused runs to resume: nothing listens on the port yet.
        for i in range(args.repeat):
            cli("run", f"Question {i}?", "--flow", str(flow), "--id", f"paused-{i}", check=3)
        policy = FirstRequests()
        with SimServer(policy, port=port).start():
            cli("run", "What is the answer?", "--flow", str(flow), "--id", "done")
            timings: dict[str, list[float]] = {name: [] for name in TARGETS_S}
            for i in range(args.repeat):
                for name, argv in (("--help", ["--help"]), ("ls", ["ls"]),
                                   ("show", ["show", "done"])):  # fmt: skip
                    start = time.perf_counter()
                    cli(*argv)
                    timings[name].append(time.perf_counter() - start)
                start = time.perf_counter()
                cli("resume", f"paused-{i}")
                first = policy.first_after(start)
                if first is None:
                    raise SystemExit(f"resume of paused-{i} sent no model request")
                timings["resume → first request"].append(first - start)
    print(f"CLI latency, fresh process each, median of {args.repeat} (this machine: "
          f"{os.cpu_count()} cores)")  # fmt: skip
    print(f"{'command':<24}{'median s':>10}{'min s':>8}{'max s':>8}{'target s':>10}")
    for name, values in timings.items():
        print(
            f"{name:<24}{statistics.median(values):>10.3f}{min(values):>8.3f}"
            f"{max(values):>8.3f}{TARGETS_S[name]:>10.1f}"
        )


if __name__ == "__main__":
    main()
