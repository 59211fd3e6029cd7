"""The issue's test: two workers, 20 runs (single agents and planners with a
sub-agent), one worker SIGKILLed three times at random moments and restarted each
time. Every run completes exactly once, with the answer and the tool calls of an
uninterrupted run; only calls in flight at a kill run again."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fleet_kit import (
    FleetPolicy,
    WorkerProcess,
    check_exactly_once,
    statuses,
    submit_all,
    tool_calls,
    wait_for,
)

RUNS = 20
KILLS = 3


@pytest.mark.timeout(180)
def test_twenty_runs_survive_three_kills_of_a_worker(
    postgres_server, redis_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
    policy: FleetPolicy,
) -> None:  # fmt: skip
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    env = {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "1200"}
    common = ("--store", store, "--broker", broker, "--takeover-after", "6")
    # The keeper takes few runs at once: runs wait in the queue for each new victim.
    keeper = workers(*common, "--concurrency", "4", "--beat", home="keeper", env=env)
    victim_args = (*common, "--concurrency", "10")
    victim = workers(*victim_args, home="victim-0", env=env)
    keeper.wait_ready()
    victim.wait_ready()
    runs = {f"run{i:02}": "team" if i % 3 == 0 else "single" for i in range(RUNS)}
    submit_all(runs, flows, store, broker)
    kills: dict[int, float] = {}

    def calls_by(pid: int) -> int:
        return sum(1 for made in tool_calls(log).values() for _, p in made if p == pid)

    for kill in range(KILLS):
        # A random moment: after the victim made a random number of tool calls.
        after = rng.randint(1, 4)
        pid = victim.pid
        wait_for(lambda: calls_by(pid) >= after, 60, f"kill {kill}: {after} calls (seed {seed})")  # noqa: B023
        kills[victim.pid] = time.time()
        victim.signal(signal.SIGKILL)
        victim.proc.wait(timeout=30)
        victim = workers(*victim_args, home=f"victim-{kill + 1}", env=env).wait_ready()
    done = lambda: set(statuses(store, list(runs)).values()) == {"completed"}  # noqa: E731
    wait_for(done, 120, f"every run to complete (seed {seed})")
    again = check_exactly_once(runs, store, log, policy, kills=kills)
    assert again <= KILLS * 10, (again, seed)  # at most the calls in flight at each kill
