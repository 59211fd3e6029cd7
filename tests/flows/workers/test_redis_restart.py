"""Redis restarted empty mid-run loses no run: the store says what the fleet owes.

Redis holds the queue and which tasks wait; PostgreSQL holds the runs. Here Redis
(no persistence) is killed while one worker runs two runs and two more wait in
its queue, the worker is SIGKILLed while Redis is away, and Redis comes back
with nothing: the sweep finds the two queued runs (their tasks gone) and the dead
worker's two (``running`` under a worker's lease that no one renews) in the
store, and the other worker completes all four exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fleet_kit import (
    FleetPolicy,
    WorkerProcess,
    check_exactly_once,
    environ,
    question,
    statuses,
    submit_all,
    tool_calls,
    tool_topic,
    wait_for,
)
from support.servers import RedisServer

from mirograph.flows.workers.sweep import sweep

TAKEOVER_S = 5


@pytest.mark.timeout(150)
def test_redis_restarted_empty_while_a_worker_dies_loses_no_run(
    postgres_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
    policy: FleetPolicy,
) -> None:  # fmt: skip
    redis_server = RedisServer(tmp_path / "redis", persistent=False)
    redis_server.start()
    try:
        store, broker = postgres_server.url, redis_server.url
        log = tmp_path / "steps.log"
        env = {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "500"}
        common = ("--store", store, "--broker", broker, "--takeover-after", str(TAKEOVER_S))
        doomed = workers(*common, "--concurrency", "2", home="doomed", env=env).wait_ready()
        runs = {"r0": "single", "r1": "team", "r2": "single", "r3": "team"}
        submit_all(runs, flows, store, broker)

        def started_on_doomed() -> set[str]:
            calls = tool_calls(log)
            return {
                run_id for run_id, kind in runs.items()
                if any(pid == doomed.pid for _, pid in calls.get(tool_topic(run_id, kind), []))
            }  # fmt: skip

        wait_for(lambda: len(started_on_doomed()) == 2, 60, "two runs on the worker")
        assert set(statuses(store, list(runs)).values()) == {"running", "queued"}
        redis_server.kill()  # the two waiting tasks go with it: no persistence
        killed_at = time.time()
        doomed.signal(signal.SIGKILL)
        doomed.proc.wait(timeout=30)
        redis_server.start()
        assert redis_server.client().dbsize() == 0
        keeper = workers(*common, "--concurrency", "4", "--beat", home="keeper", env=env)
        keeper.wait_ready()
        done = lambda: set(statuses(store, list(runs)).values()) == {"completed"}  # noqa: E731
        wait_for(done, 90, "every run to complete", details=keeper.log)
        check_exactly_once(runs, store, log, policy, kills={doomed.pid: killed_at})
        calls = tool_calls(log)
        for run_id, kind in runs.items():
            assert calls[tool_topic(run_id, kind)][-1][1] == keeper.pid
    finally:
        redis_server.close()


@pytest.mark.timeout(60)
def test_a_run_a_person_ran_and_killed_is_not_taken_over(
    postgres_server, redis_server, flows, tmp_path: Path
) -> None:
    """The sweep continues only the fleet's runs: a `mirograph run` killed on a laptop
    stays for its owner to resume."""
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    env = environ(tmp_path / "laptop", {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "2000"})
    args = ["run", question("mine"), "--flow", str(flows["single"]), "--id", "mine"]
    run = subprocess.Popen(
        [sys.executable, "-m", "mirograph", *args, "--store", store],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: "mine" in tool_calls(log), 30, "the run's first tool call")
    finally:
        run.kill()
        run.wait(timeout=30)
    assert statuses(store, ["mine"]) == {"mine": "running"}  # as its dead runner left it
    assert sweep(store, broker) == []
    assert statuses(store, ["mine"]) == {"mine": "running"}
