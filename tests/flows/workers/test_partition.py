"""A worker that stops renewing its leases (a machine cut off, here SIGSTOP) loses its
runs to another worker once the leases expire; when it comes back it writes nothing
to them (fencing), and every run finishes exactly once."""

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
    wait_for,
)

TAKEOVER_S = 6


@pytest.mark.timeout(120)
def test_a_frozen_workers_runs_move_on_and_it_writes_nothing_when_it_wakes(
    postgres_server, redis_server, flows, workers: Callable[..., WorkerProcess], tmp_path: Path,
    policy: FleetPolicy,
) -> None:  # fmt: skip
    store, broker = postgres_server.url, redis_server.url
    log = tmp_path / "steps.log"
    env = {"FLEET_LOG": str(log), "FLEET_TOOL_MS": "1500"}
    common = ("--store", store, "--broker", broker, "--takeover-after", str(TAKEOVER_S))
    frozen = workers(*common, "--concurrency", "2", home="frozen", env=env).wait_ready()
    runs = {"s1": "single", "s2": "single"}
    submit_all(runs, flows, store, broker)

    def made_by(pid: int) -> set[str]:
        return {t for t, made in tool_calls(log).items() if any(p == pid for _, p in made)}

    wait_for(lambda: made_by(frozen.pid) == set(runs), 60, "both runs on the frozen worker")
    keeper = workers(*common, "--concurrency", "4", "--beat", home="keeper", env=env)
    keeper.wait_ready()
    frozen_at = time.time()
    frozen.signal(signal.SIGSTOP)
    in_flight = {r for r, status in statuses(store, list(runs)).items() if status != "completed"}
    assert in_flight  # each run takes ~6 s: more than the keeper took to start
    # On the frozen worker's own host its pid is alive: only the leases' expiry (a
    # third of the takeover time) frees the runs, as from another machine.
    took = lambda: made_by(keeper.pid) >= in_flight  # noqa: E731
    wait_for(took, 30, "the keeper to take the runs", keeper.log)
    assert time.time() - frozen_at < TAKEOVER_S + 3
    frozen.signal(signal.SIGCONT)
    done = lambda: set(statuses(store, list(runs)).values()) == {"completed"}  # noqa: E731
    wait_for(done, 60, "both runs to complete")
    # The woken worker finds its runs taken over and ends their tasks without a write.
    busy = lambda: len(re.findall(r"succeeded in \S+: 'busy'", frozen.log()))  # noqa: E731
    wait_for(lambda: busy() == len(in_flight), 60, "the woken worker to give up", frozen.log)
    assert frozen.proc.poll() is None  # alive and well, only out of these runs
    check_exactly_once(runs, store, log, policy, kills={frozen.pid: frozen_at})
