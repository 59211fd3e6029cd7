"""The run registry and leases on PostgreSQL keep the SQLite store's contract.

Against a real PostgreSQL server of the test's own (``postgres_server``): runs
are created, found, listed and updated; of racing acquirers in separate
processes exactly one gets the lease; a holder that died or went silent is
taken over with the next token; a session that lost its lease cannot write; a
server killed and started again keeps every committed row; a server that is
not there is one line naming the URL, its password hidden.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mirograph.errors import LeaseLostError, RunBusyError, StoreURLError, UserInputError
from mirograph.state.postgres.connect import shown
from mirograph.state.postgres.leases import PostgresLeases
from mirograph.state.postgres.registry import PostgresRunRegistry
from mirograph.state.registry import RunRecord


class Clock:
    """A clock the test moves by hand, starting at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(postgres_server) -> Iterator[PostgresRunRegistry]:
    reg = PostgresRunRegistry(postgres_server.url)
    reg.create(RunRecord("r1", "q", "f", {"agents": {"main": {}}}, "running"))
    yield reg
    reg.close()


def test_a_run_is_created_found_listed_and_updated(registry: PostgresRunRegistry) -> None:
    registry.create(RunRecord("r2", "why?", "deep-research", {"k": [1, "two"]}, "paused"))
    registry.update("r2", status="completed", answer="42", usage={"model_calls": 3})
    got = registry.get("r2")
    assert (got.question, got.flow, got.flow_spec, got.status) == (
        "why?",
        "deep-research",
        {"k": [1, "two"]},
        "completed",
    )
    assert (got.answer, got.usage, got.lease) == ("42", {"model_calls": 3}, None)
    assert got.run_date is not None and got.created_at <= got.updated_at
    assert [r.id for r in registry.list()] == ["r2", "r1"]  # newest first
    assert [r.id for r in registry.list(statuses=["completed"])] == ["r2"]
    with pytest.raises(UserInputError, match="run id 'r2' already exists"):
        registry.create(RunRecord("r2", "q", "f", {}, "running"))


def test_the_lease_has_one_holder_and_its_token_keeps_increasing(
    registry: PostgresRunRegistry,
) -> None:
    leases = registry.leases
    lease = leases.acquire("r1")
    with pytest.raises(RunBusyError, match=f"run r1 is running in pid {os.getpid()}"):
        leases.acquire("r1")
    assert registry.get("r1").effective_status == "running"
    assert leases.release(lease) is True
    again = leases.acquire("r1")
    assert again.token == lease.token + 1
    assert leases.renew(again) is True and leases.renew(lease) is False


def test_a_silent_holder_elsewhere_is_taken_over_and_cannot_write(
    postgres_server, registry: PostgresRunRegistry
) -> None:
    clock = Clock()
    there = PostgresLeases(postgres_server.url, host="other-host", clock=clock, ttl_s=60)
    old = there.acquire("r1", pid=12345)
    registry.update("r1", lease=old, status="running")  # its own lease: accepted
    here = PostgresLeases(postgres_server.url, clock=clock, ttl_s=60)
    with pytest.raises(RunBusyError, match="on other-host"):
        here.acquire("r1")  # its heartbeat is fresh
    clock.now += 61
    assert [lease.run_id for lease in here.expired()] == ["r1"]
    new = here.acquire("r1")
    assert new.token == old.token + 1
    assert registry.step_check(old) == "run r1 was taken over by another runner"
    assert registry.step_check(new) is None
    registry.request_pause("r1", "asked by a test")
    assert registry.step_check(new) == "asked by a test"
    with pytest.raises(LeaseLostError, match="run r1 was taken over"):
        registry.update("r1", lease=old, status="completed", answer="stale")
    assert registry.get("r1").answer is None
    there.close()
    here.close()


RACE = """
import sys, time
from mirograph.errors import RunBusyError
from mirograph.state.postgres.leases import PostgresLeases
leases = PostgresLeases(sys.argv[1])
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


def test_of_racing_processes_exactly_one_acquires(postgres_server, registry) -> None:
    start = str(time.time() + 2.0)  # every process reaches acquire at the same instant
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, postgres_server.url, start],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]  # fmt: skip
    lines = [p.stdout.readline().strip() for p in procs if p.stdout]
    for proc in procs:
        proc.communicate("", timeout=30)
    assert sorted(lines) == ["busy"] * 5 + ["won 1"], lines


def test_committed_rows_survive_a_server_killed_and_started_again(
    postgres_server, registry: PostgresRunRegistry
) -> None:
    lease = registry.leases.acquire("r1")
    registry.update("r1", lease=lease, status="paused", reason="before the crash")
    registry.close()
    postgres_server.kill()
    with pytest.raises(StoreURLError, match="cannot reach the PostgreSQL store"):
        PostgresRunRegistry(postgres_server.url)
    postgres_server.start()
    reopened = PostgresRunRegistry(postgres_server.url)
    row = reopened.get("r1")
    assert (row.status, row.reason, row.lease.token) == ("paused", "before the crash", 1)
    reopened.close()


def test_an_unreachable_store_is_one_line_without_the_password() -> None:
    url = "postgresql://mirograph:hunter2@127.0.0.1:9/runs"
    with pytest.raises(StoreURLError) as failed:
        PostgresRunRegistry(url)
    message = str(failed.value)
    assert "\n" not in message and "hunter2" not in message
    assert message.startswith("cannot reach the PostgreSQL store postgresql://mirograph:***@")
    assert shown(url) == "postgresql://mirograph:***@127.0.0.1:9/runs"
