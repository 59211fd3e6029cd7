"""Run leases: one holder at a time, a dead or silent holder taken over, old tokens fenced."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mirograph.errors import LeaseLostError, RunBusyError
from mirograph.state.leases import SqliteLeases
from mirograph.state.registry import RunRecord, SqliteRunRegistry


class Clock:
    """A clock the test moves by hand (expiry without waiting), starting at the real
    time: readers that use the real clock see its leases as current."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def registry(db: Path) -> Iterator[SqliteRunRegistry]:
    reg = SqliteRunRegistry(db)
    reg.create(RunRecord("r1", "q", "f", {}, "running"))
    yield reg
    reg.close()


def _leases(db: Path, **kwargs: object) -> SqliteLeases:
    return SqliteLeases(db, **kwargs)  # type: ignore[arg-type]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_holder_keeps_the_lease_and_is_named(db: Path) -> None:
    leases = _leases(db)
    lease = leases.acquire("r1")
    with pytest.raises(RunBusyError) as busy:
        leases.acquire("r1")
    host = leases.host
    assert str(busy.value) == (
        f"run r1 is running in pid {os.getpid()} on {host}; `mirograph pause r1` to stop it"
    )
    assert leases.holder("r1") == lease
    leases.close()


def test_release_frees_the_lease_and_tokens_keep_increasing(db: Path) -> None:
    leases = _leases(db)
    first = leases.acquire("r1")
    assert leases.release(first)
    assert leases.holder("r1") is None
    second = leases.acquire("r1")
    assert second.token == first.token + 1
    assert not leases.release(first)  # no longer ours: nothing released
    assert leases.holder("r1") == second
    leases.close()


def test_a_dead_holder_on_this_host_frees_the_lease_at_once(db: Path) -> None:
    leases = _leases(db)
    dead = leases.acquire("r1", pid=_dead_pid())
    taken = leases.acquire("r1")
    assert (taken.token, taken.pid) == (dead.token + 1, os.getpid())
    leases.close()


def test_a_holder_on_another_host_holds_until_its_heartbeat_expires(db: Path) -> None:
    clock = Clock()
    there = _leases(db, host="other-host", clock=clock, ttl_s=60)
    here = _leases(db, clock=clock, ttl_s=60)
    held = there.acquire("r1", pid=_dead_pid())  # its pid means nothing on this host
    clock.now += 59
    with pytest.raises(RunBusyError, match="on other-host"):
        here.acquire("r1")
    assert there.renew(held) is True  # the heartbeat: 60 s more from now
    clock.now += 59
    with pytest.raises(RunBusyError):
        here.acquire("r1")
    assert [lease.run_id for lease in here.expired()] == []
    clock.now += 2
    assert [lease.run_id for lease in here.expired()] == ["r1"]
    taken = here.acquire("r1")
    assert taken.token == held.token + 1
    assert there.renew(held) is False  # the old holder learns it lost the lease
    there.close()
    here.close()


def test_a_write_with_a_lost_lease_is_refused(db: Path, registry: SqliteRunRegistry) -> None:
    clock = Clock()
    old_runner = _leases(db, host="other-host", clock=clock, ttl_s=60)
    old = old_runner.acquire("r1", pid=12345)
    registry.update("r1", lease=old, status="running")  # its own lease: accepted
    clock.now += 61
    new = _leases(db, clock=clock, ttl_s=60).acquire("r1")
    registry.update("r1", lease=new, status="paused", reason="new runner's")
    with pytest.raises(LeaseLostError, match=f"run r1 was taken over by pid {os.getpid()}"):
        registry.update("r1", lease=old, status="completed", answer="stale")
    row = registry.get("r1")
    assert (row.status, row.reason, row.answer) == ("paused", "new runner's", None)
    old_runner.close()


def test_effective_status_follows_the_lease(db: Path, registry: SqliteRunRegistry) -> None:
    leases = registry.leases
    assert registry.get("r1").lease is None
    lease = leases.acquire("r1")
    assert registry.get("r1").effective_status == "running"
    leases.release(lease)
    # The row still says running (its runner never wrote its end), but nobody holds it.
    assert registry.get("r1").status == "running"
    assert registry.get("r1").effective_status == "paused"
    assert [r.id for r in registry.list(statuses=["paused"])] == ["r1"]
    leases.acquire("r1", pid=_dead_pid())
    assert registry.get("r1").effective_status == "paused"


RACE = """
import sys, time
from mirograph.errors import RunBusyError
from mirograph.state.leases import SqliteLeases
leases = SqliteLeases(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    pass
try:
    lease = leases.acquire("r1")
except RunBusyError:
    print("busy")
else:
    print("won", lease.token)
    sys.stdout.flush()
    sys.stdin.read()  # hold it until the test has counted
"""


def test_of_racing_processes_exactly_one_acquires(db: Path) -> None:
    _leases(db).close()  # the table exists before the race
    start = str(time.time() + 1.0)  # every process reaches acquire at the same instant
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(db), start],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]  # fmt: skip
    lines = [p.stdout.readline().strip() for p in procs if p.stdout]
    for proc in procs:
        proc.communicate("", timeout=30)
    assert sorted(lines) == ["busy"] * 5 + ["won 1"], lines


def test_the_step_check_reads_a_takeover_and_a_pause_in_one(
    db: Path, registry: SqliteRunRegistry
) -> None:
    clock = Clock()
    mine = registry.leases.acquire("r1")
    assert registry.step_check(mine) is None  # held, no pause asked
    registry.request_pause("r1", "asked by the user")
    assert registry.step_check(mine) == "asked by the user"
    registry.update("r1", pause_requested=None)
    assert registry.leases.release(mine)
    other = _leases(db, host="other-host", clock=clock).acquire("r1", pid=12345)
    registry.request_pause("r1", "asked by the user")  # the takeover is said first
    assert registry.step_check(mine) == "run r1 was taken over by another runner"
    assert registry.step_check(other) == "asked by the user"
    orphan = replace(mine, run_id="r2")  # a run without a lease row is nobody's
    assert registry.step_check(orphan) == "run r2 was taken over by another runner"
