"""A run's events in the PostgreSQL store: batched off the engine's path, stored in
full at every session's end (a failure's too), read back in order by another
process with another ``MIROGRAPH_HOME``; ``show --json`` and ``export`` there see
them (against a server of the test's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from support.noting_graph import NOTES
from support.testkit import Cli, wait_for_fifo

from mirograph.errors import RunFailedError
from mirograph.flows.runner import start_run
from mirograph.state.events import read_all
from mirograph.state.store import open_store

READ_BACK = """
import asyncio, json, sys
from mirograph.state.events import read_all
from mirograph.state.store import open_store
async def main():
    async with open_store(sys.argv[1]) as store:
        print(json.dumps(await read_all(store.events, sys.argv[2])))
asyncio.run(main())
"""


def read_back(url: str, run_id: str, home: Path) -> list[dict]:
    """The run's events as another process, with another home, reads them."""
    env = {**os.environ, "MIROGRAPH_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, url, run_id],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def stored_rows(url: str, run_id: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT seq, body FROM mirograph_events WHERE run_id = %s ORDER BY seq", (run_id,)
        ).fetchall()
    return [(seq, json.loads(body)["event"]) for seq, body in rows]


@pytest.mark.parametrize("fails", [False, True], ids=["completed", "failed"])
async def test_a_session_stores_all_its_events_when_it_ends_however_it_ends(
    home: Path, postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    # The graph emits its events within one batching interval and ends at once:
    # only the flush at the session's end can have stored them.
    monkeypatch.setenv("NOTING_FAIL", "1" if fails else "")
    url = postgres_server.url
    graph = "support.noting_graph:build_graph"
    if fails:
        with pytest.raises(RunFailedError):
            await start_run("Note things.", graph, run_id="noted", store_url=url)
    else:
        outcome = await start_run("Note things.", graph, run_id="noted", store_url=url)
        assert outcome.status == "completed"
    end = "run_failed" if fails else "run_completed"
    expected = ["run_started", *["note"] * NOTES, end]
    assert stored_rows(url, "noted") == list(enumerate(expected, 1))
    events = read_back(url, "noted", tmp_path / "elsewhere")
    assert [e["event"] for e in events] == expected
    assert [e["index"] for e in events if e["event"] == "note"] == list(range(NOTES))
    assert not (tmp_path / "elsewhere" / "runs").exists()  # nothing kept on that machine


async def test_a_second_session_numbers_on_after_the_first(home: Path, postgres_server) -> None:
    url = postgres_server.url
    async with open_store(url) as store:
        first = await store.events.writer("r")
        assert [first.append({"event": "a", "ts": 1.0})[0] for _ in range(3)] == [1, 2, 3]
        await first.aclose()
        second = await store.events.writer("r")
        assert second.append({"event": "b", "ts": 2.0})[0] == 4
        await second.aclose()
        assert [seq for seq, _ in await store.events.read("r", after=2)] == [3, 4]
        assert [e["event"] for e in await read_all(store.events, "r")] == ["a", "a", "a", "b"]


def write_count_flow(path: Path, base_url: str) -> Path:
    flow = {
        "name": "count",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {
            "main": {"model": "m", "max_turns": 6, "tools": ["support.e2e_tools:record_index"]}
        },
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


@pytest.mark.timeout(180)
def test_show_and_export_on_another_home_see_a_killed_runs_events(
    cli: Cli, sim_model, postgres_server, tmp_path: Path
) -> None:
    url = postgres_server.url
    fifo = tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    cli.env.update({"E2E_LOG": str(tmp_path / "calls.log"), "E2E_FIFO": str(fifo)})
    flow = write_count_flow(tmp_path / "count.yaml", sim_model("support.e2e_policy:count"))
    runner = cli.popen(
        "run", "Count.", "--flow", str(flow), "--id", "killed", "--store", url,
        env={"E2E_BLOCK_AT": "3"},
    )  # fmt: skip
    try:
        assert wait_for_fifo(fifo, runner) == "blocked at 3\n"
        deadline = time.monotonic() + 30
        while "tool_call" not in {kind for _, kind in stored_rows(url, "killed")[-2:]}:
            assert time.monotonic() < deadline, "turn 2's tool call never reached the store"
            time.sleep(0.05)
    finally:
        runner.kill()
        runner.wait(timeout=30)
    other = Cli(tmp_path / "home-b", env=dict(cli.env))
    shown = other("show", "killed", "--store", url, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    events = read_back(url, "killed", tmp_path / "home-c")
    assert [e["turn"] for e in events if e["event"] == "tool_call"] == [1, 2]
    # A killed session runs until its last event: only the store knows when that was.
    assert 0 < report["wall_seconds"] <= round(events[-1]["ts"] - events[0]["ts"], 3) + 0.5
    assert "mirograph_events" in report["events"]
    exported = other("export", "killed", "--store", url, "--format", "miroflow")
    assert exported.returncode == 0, exported.stderr
    steps = [step["step_name"] for step in json.loads(exported.stdout)["step_logs"]]
    assert steps[0] == "Main | Task Start"  # drawn from the run_started event
    assert {"Main Agent | Turn: 1 | LLM Call", "Main Agent | Turn: 2 | LLM Call"} <= set(steps)
    assert not list((tmp_path / "home-b").rglob("events.jsonl"))  # nothing local was read


async def test_a_session_that_lost_its_lease_stores_none_of_its_late_events(
    home: Path, postgres_server
) -> None:
    # Session A, frozen before its flush, wakes after B took the run over: its queued
    # events would take the numbers B gives its own. They are refused; B's are stored.
    async with open_store(postgres_server.url) as store:
        leases = store.registry.leases
        lease_a = leases.acquire("r")
        a = await store.events.writer("r", lease_a)
        a._task.cancel()  # frozen: its pump never ran
        a.append({"event": "tool_call", "who": "A"})
        assert leases.release(lease_a)  # its lease expired (freed for the taker-over)
        lease_b = leases.acquire("r")
        b = await store.events.writer("r", lease_b)
        for name in ("run_resumed", "model_call"):
            b.append({"event": name, "who": "B"})
        await a.flush()  # A woken: it flushes first
        await b.aclose()
        await a.aclose()
        assert a.lost and not b.lost
        stored = [(seq, e["event"], e["who"]) for seq, e in await store.events.read("r")]
        assert stored == [(1, "run_resumed", "B"), (2, "model_call", "B")]
