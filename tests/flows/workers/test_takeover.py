"""A worker killed with SIGKILL has its runs continued by another from their last
checkpoint, within the takeover time, each finishing exactly once."""

from __future__ import annotations

import re
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
    tool_topic,
    wait_for,
)

from mirograph.flows.workers.broker import enqueue

TAKEOVER_S = 5
#: Short, so that Redis redelivers the dead worker's tasks within the test.
VISIBILITY_S = 8


@pytest.mark.timeout(150)
def test_a_killed_workers_runs_are_continued_by_another_within_the_takeover_time(
    postgres_server, redis_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
    policy: FleetPolicy,
) -> None:  # fmt: skip
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    env = {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "400"}
    common = ("--store", store, "--broker", broker, "--takeover-after", str(TAKEOVER_S))
    common += ("--visibility-timeout", str(VISIBILITY_S))
    doomed = workers(*common, "--concurrency", "3", home="doomed", env=env).wait_ready()
    runs = {f"run{i}": "team" if i % 2 else "single" for i in range(6)}
    first = dict(list(runs.items())[:3])
    submit_all(first, flows, store, broker)

    def doomed_in_flight() -> set[str]:
        calls = tool_calls(log)
        return {
            run_id for run_id, kind in runs.items()
            if any(pid == doomed.pid for _, pid in calls.get(tool_topic(run_id, kind), []))
        }  # fmt: skip

    wait_for(lambda: doomed_in_flight() == set(first), 60, "the doomed worker's three runs")
    # The keeper has room for the doomed worker's runs beside its own.
    keeper = workers(*common, "--concurrency", "6", home="keeper", env=env)
    keeper.wait_ready()
    # The sweep on its own, as on a small machine of its own.
    beat_args = ("--store", store, "--broker", broker, "--takeover-after", str(TAKEOVER_S))
    workers(*beat_args, home="beat", command="beat").wait_ready()
    submit_all(dict(list(runs.items())[3:]), flows, store, broker)
    killed_at = time.time()
    doomed.signal(signal.SIGKILL)
    taken = doomed_in_flight()
    doomed.proc.wait(timeout=30)
    done = lambda: set(statuses(store, list(runs)).values()) == {"completed"}  # noqa: E731
    wait_for(done, 90, "every run to complete")
    check_exactly_once(runs, store, log, policy, kills={doomed.pid: killed_at})
    # Each of the dead worker's unfinished runs made its next model call within the
    # takeover time, and the rest of its work ran on the keeper.
    for run_id in taken:
        after = [
            r.at for r in policy.requests if r.topic.split("/")[0] == run_id and r.at > killed_at
        ]
        if after:
            assert min(after) - killed_at < TAKEOVER_S, (run_id, min(after) - killed_at)
    calls = tool_calls(log)
    for run_id in taken:
        pids = [pid for _, pid in calls[tool_topic(run_id, runs[run_id])]]
        assert set(pids[pids.index(doomed.pid) :]) <= {doomed.pid, keeper.pid}
    # Redis redelivers the dead worker's unacknowledged tasks once they are older than
    # the visibility timeout: by then the runs are taken over, so each does nothing.
    received = set(re.findall(r"Task mirograph\.run\[([\w-]+)\] received", doomed.log()))
    ended = set(re.findall(r"Task mirograph\.run\[([\w-]+)\] succeeded", doomed.log()))
    held = received - ended
    assert held

    def redelivered() -> dict[str, str]:
        ends = re.findall(
            r"Task mirograph\.run\[([\w-]+)\] succeeded in \S+: '([^']*)'", keeper.log()
        )
        return {task: said for task, said in ends if task in held}

    wait_for(lambda: len(redelivered()) == len(held), 60, "the dead worker's tasks again")
    # Each ran the run on (a continuation like any), found it held, or found it ended.
    assert set(redelivered().values()) <= {"completed", "busy", "nothing to do"}
    # A task for a run that ended does nothing.
    duplicate = enqueue(broker, "run0")
    wait_for(
        lambda: f"Task mirograph.run[{duplicate}] succeeded" in keeper.log(), 30, "the duplicate"
    )
    assert f"Task mirograph.run[{duplicate}] succeeded" in keeper.log()
    assert re.search(rf"run\[{duplicate}\] succeeded in \S+: 'nothing to do'", keeper.log())
    check_exactly_once(runs, store, log, policy, kills={doomed.pid: killed_at})
