"""``--store postgresql://…``: the CLI runs, shows, lists, exports and resumes on
PostgreSQL, against a server of the test's own and ``mirograph sim-model``.

A team run (a planner and a browsing sub-agent, whose results are kept as
blobs) is killed with SIGKILL in a sub-agent's tool call and resumed: it
completes with every tool call made once but the one in flight, and its export
has each result in full (read back from the store's blobs). A server killed
mid-run stops the run in one line (exit 3), and a resume once the server is back
finishes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.testkit import Cli, release, wait_for_fifo, write_team_flow

from mirograph.state.blobs import OFFLOAD_CHARS
from mirograph.state.postgres.store import POOL_SIZE
from mirograph.state.store import open_store


@pytest.mark.timeout(240)
def test_a_team_run_killed_on_postgresql_resumes_and_reads_back_in_full(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    store = postgres_server.url
    log, fifo = tmp_path / "calls.log", tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    cli.env.update({"TEAM_LOG": str(log), "TEAM_FIFO": str(fifo)})
    base_url = sim_model("support.team_policy:team?browsing=3")
    flow = write_team_flow(tmp_path / "team.yaml", base_url, coding=None)
    runner = cli.popen(
        "run", "Compare alpha and beta.", "--flow", str(flow), "--id", "pg", "--store", store,
        env={"TEAM_BLOCK_AT": "browsing:2"},
    )  # fmt: skip
    try:
        assert wait_for_fifo(fifo, runner) == "blocked at browsing:2\n"
    finally:
        runner.kill()
        runner.wait(timeout=30)
    listed = cli("ls", "--store", store)
    assert listed.returncode == 0 and "pg" in listed.stdout and "paused" in listed.stdout
    resumed = cli("resume", "pg", "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    shown = cli("show", "pg", "--store", store, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["status"], report["stop_reason"]) == ("completed", "answered")
    assert report["answer"] and [r["status"] for r in report["invocations"]] == ["completed"]
    calls = log.read_text().splitlines()
    twice = {line: n for line, n in Counter(calls).items() if n > 1}
    assert twice == {"lookup browsing 2": 2}, calls  # only the call in flight ran again
    exported = cli("export", "pg", "--store", store, "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    results = [r["content"] for r in records if r.get("role") == "tool"]
    lookups = [text for text in results if text.startswith("lookup result")]
    # Each longer than a blob's threshold, so kept as a blob: exported whole.
    assert lookups == [
        f"lookup result browsing#{k}. " + f"detail-browsing-{k} " * 60 for k in (1, 2, 3)
    ]
    assert all(len(text) > OFFLOAD_CHARS for text in lookups)
    assert [t for t in results if t.startswith("REPORT")] == ["REPORT[browsing:3]"]


@dataclass
class HeldRun:
    """A ``mirograph run`` of a planner and browsing on ``store``, held in browsing's
    second tool call until ``go``; ``log`` lists each tool call made."""

    runner: subprocess.Popen[str]
    log: Path
    go: Path


def held_run(cli: Cli, sim_model, tmp_path: Path, store: str, run_id: str) -> HeldRun:
    log, held, go = tmp_path / "calls.log", tmp_path / "held.fifo", tmp_path / "go.fifo"
    os.mkfifo(held)
    os.mkfifo(go)
    cli.env.update({"TEAM_LOG": str(log), "PAUSE_FIFO": str(held), "PAUSE_GO": str(go)})
    base_url = sim_model("support.team_policy:team?browsing=3")
    flow = write_team_flow(
        tmp_path / "team.yaml", base_url, browsing="support.pause_tools:lookup", coding=None
    )
    runner = cli.popen(
        "run", "Compare alpha and beta.", "--flow", str(flow), "--id", run_id, "--store", store,
        env={"PAUSE_BLOCK_AT": "browsing:2"},
    )  # fmt: skip
    assert wait_for_fifo(held, runner) == "holding browsing:2\n"
    return HeldRun(runner, log, go)


@pytest.mark.timeout(240)
def test_a_postgresql_outage_stops_the_run_resumably_and_a_resume_finishes_it(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    store = postgres_server.url
    held = held_run(cli, sim_model, tmp_path, store, "out")
    runner, log, go = held.runner, held.log, held.go
    postgres_server.kill()  # the store goes away while a tool call is in flight
    release(go)  # the call ends; its step cannot be checkpointed
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: the run store {store} went away")
    assert "`mirograph resume out`" in lines[0]
    postgres_server.start()
    resumed = cli("resume", "out", "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    calls = log.read_text().splitlines()
    twice = {line: n for line, n in Counter(calls).items() if n > 1}
    assert twice == {"lookup browsing 2": 2}, calls  # only the step that was never saved


OPEN_AND_READ = """
import asyncio, sys
from mirograph.state.store import open_store
async def main():
    async with open_store(sys.argv[1]) as store:
        store.registry.list()
asyncio.run(main())
print("ok")
"""


def test_processes_opening_a_new_store_at_once_all_succeed(postgres_server) -> None:
    # The migrations' CREATE INDEX CONCURRENTLY deadlocked against a waiting opener
    # and could leave an invalid index behind; the schema is made in one transaction.
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_AND_READ, postgres_server.url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    outcomes = [proc.communicate(timeout=120) for proc in procs]
    assert [out.strip() for out, _ in outcomes] == ["ok"] * 4, outcomes
    with postgres_server.connect() as conn:
        invalid = conn.execute("SELECT indexrelid::regclass FROM pg_index WHERE NOT indisvalid")
        assert invalid.fetchall() == []


async def test_the_runs_of_one_process_share_its_connections(postgres_server) -> None:
    async def one() -> None:
        async with open_store(postgres_server.url) as store:
            store.registry.list()
            await store.blobs.put("x" * 2000)
            await asyncio.sleep(0)  # all of them open at once

    await asyncio.gather(*(one() for _ in range(40)))
    async with open_store(postgres_server.url) as a, open_store(postgres_server.url) as b:
        assert a.checkpointer is b.checkpointer and a.registry is b.registry
        with postgres_server.connect() as conn:
            count = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).fetchone()[0]
        assert count <= POOL_SIZE + 2  # the pool, the registry's one, this one


async def test_a_blob_is_committed_when_put(postgres_server) -> None:
    # Parallel sub-agents' steps write on several connections: a blob staged by one
    # could be taken by another's write that then fails, leaving a checkpoint
    # pointing at nothing. Committed at once, it is there for any write after.
    async with open_store(postgres_server.url) as store:
        key = await store.blobs.put("y" * 5000)
        with postgres_server.connect() as conn:
            row = conn.execute("SELECT key FROM mirograph_blobs WHERE key = %s", (key,))
            assert row.fetchone() == (key,)


@pytest.mark.timeout(240)
def test_a_run_goes_on_through_a_server_restart_between_its_steps(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    store = postgres_server.url
    held = held_run(cli, sim_model, tmp_path, store, "rs")
    runner, log, go = held.runner, held.log, held.go
    postgres_server.stop()  # a restart while a tool call is in flight: every
    postgres_server.start()  # connection the run holds is gone, the server is back
    release(go)
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err  # reconnected: the run went on
    calls = log.read_text().splitlines()
    assert Counter(calls)["lookup browsing 2"] == 1 and "lookup browsing 3" in calls
    shown = cli("show", "rs", "--store", store, "--json")
    assert json.loads(shown.stdout)["status"] == "completed"
