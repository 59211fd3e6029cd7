"""The run registry: one row per run, found by id, with a truthful status."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirograph.errors import RunNotFoundError, UserInputError
from mirograph.state.registry import RunRecord, SqliteRunRegistry, check_run_id

SPEC = {"name": "single-agent", "entry": "main", "agents": {"main": {"max_turns": 3}}}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SqliteRunRegistry]:
    reg = SqliteRunRegistry(tmp_path / "runs.db")
    yield reg
    reg.close()


def _record(run_id: str = "r1", **fields: object) -> RunRecord:
    values: dict = {
        "id": run_id,
        "question": "What is 2+2?",
        "flow": "single-agent",
        "flow_spec": SPEC,
        "status": "running",
        "pid": os.getpid(),
    }
    values.update(fields)
    return RunRecord(**values)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_create_then_get_round_trip(registry: SqliteRunRegistry) -> None:
    registry.create(_record(usage={"main": {"turns": 0}}))
    got = registry.get("r1")
    assert got.id == "r1"
    assert got.question == "What is 2+2?"
    assert got.flow == "single-agent"
    assert got.flow_spec == SPEC
    assert got.status == "running"
    assert got.usage == {"main": {"turns": 0}}
    assert got.pid == os.getpid()
    assert got.answer is None
    assert got.reason is None
    assert got.created_at > 0
    assert got.created_at == got.updated_at


def test_update_changes_fields_and_timestamp(registry: SqliteRunRegistry) -> None:
    registry.create(_record())
    before = registry.get("r1")
    usage = {"main": {"turns": 3, "prompt_tokens": 120}}

    registry.update("r1", status="completed", answer="4", usage=usage, pid=None)

    after = registry.get("r1")
    assert after.status == "completed"
    assert after.answer == "4"
    assert after.usage == usage
    assert after.pid is None
    assert after.flow_spec == SPEC
    assert after.created_at == before.created_at
    assert after.updated_at >= before.updated_at


def test_update_flow_spec_is_stored_as_json(registry: SqliteRunRegistry) -> None:
    registry.create(_record())
    registry.update("r1", flow_spec={"name": "other"}, reason="model unavailable")
    got = registry.get("r1")
    assert got.flow_spec == {"name": "other"}
    assert got.reason == "model unavailable"


def test_update_touches_only_its_run(registry: SqliteRunRegistry) -> None:
    registry.create(_record("a"))
    registry.create(_record("b"))
    registry.update("a", status="failed")
    assert registry.get("a").status == "failed"
    assert registry.get("b").status == "running"


def test_list_returns_every_run_newest_first(registry: SqliteRunRegistry) -> None:
    for run_id in ("a", "b", "c"):
        registry.create(_record(run_id))
    runs = registry.list()
    assert {r.id for r in runs} == {"a", "b", "c"}
    created = [r.created_at for r in runs]
    assert created == sorted(created, reverse=True)
    assert len(registry.list(limit=2)) == 2


def test_list_empty(registry: SqliteRunRegistry) -> None:
    assert registry.list() == []


def test_duplicate_id_names_resume(registry: SqliteRunRegistry) -> None:
    registry.create(_record("dup"))
    with pytest.raises(UserInputError, match="mirograph resume dup"):
        registry.create(_record("dup", question="another"))
    assert registry.get("dup").question == "What is 2+2?"


def test_unknown_id(registry: SqliteRunRegistry) -> None:
    with pytest.raises(RunNotFoundError, match="nope"):
        registry.get("nope")


def test_registry_persists_across_connections(tmp_path: Path) -> None:
    first = SqliteRunRegistry(tmp_path / "runs.db")
    first.create(_record("kept"))
    first.close()
    second = SqliteRunRegistry(tmp_path / "runs.db")
    try:
        assert second.get("kept").flow_spec == SPEC
    finally:
        second.close()


def test_running_with_live_pid_is_running() -> None:
    assert _record(pid=os.getpid()).effective_status == "running"


def test_running_with_dead_pid_is_paused() -> None:
    assert _record(pid=_dead_pid()).effective_status == "paused"


def test_running_without_pid_is_paused() -> None:
    assert _record(pid=None).effective_status == "paused"


def test_finished_runs_keep_their_status_whatever_the_pid() -> None:
    dead = _dead_pid()
    assert _record(status="completed", pid=dead).effective_status == "completed"
    assert _record(status="failed", pid=dead).effective_status == "failed"
    assert _record(status="paused", pid=os.getpid()).effective_status == "paused"


def test_effective_status_read_back_from_the_store(registry: SqliteRunRegistry) -> None:
    registry.create(_record("alive", pid=os.getpid()))
    registry.create(_record("killed", pid=_dead_pid()))
    assert registry.get("alive").effective_status == "running"
    assert registry.get("killed").effective_status == "paused"
    assert registry.get("killed").status == "running"


OLD_SCHEMA = """
CREATE TABLE mirograph_runs (
    id TEXT PRIMARY KEY, question TEXT NOT NULL, flow TEXT NOT NULL, flow_spec TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, answer TEXT, usage TEXT NOT NULL DEFAULT '{}',
    pid INTEGER, created_at REAL NOT NULL, updated_at REAL NOT NULL
)
"""

OPEN_AT_ONCE = """
import sys, time
from mirograph.state.registry import SqliteRunRegistry
start = float(sys.argv[2])
while time.time() < start:
    pass
SqliteRunRegistry(sys.argv[1]).close()
"""


def test_a_store_from_an_older_version_is_upgraded_by_processes_opening_it_at_once(
    tmp_path: Path,
) -> None:
    import sqlite3
    import time

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # as every version has made its stores
        conn.execute(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO mirograph_runs VALUES ('old', 'q', 'f', '{}', 'completed', NULL,"
            " '42', '{}', NULL, 1.0, 1.0)"
        )
    start = str(time.time() + 1.5)  # every process reaches the upgrade at the same instant
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(path), start],
                         stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]  # fmt: skip
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    registry = SqliteRunRegistry(path)
    old = registry.get("old")
    assert (old.answer, old.pause_requested, old.wall_seconds) == ("42", None, 0.0)
    registry.request_pause("old", "asked")
    assert registry.pause_request("old") == "asked"
    registry.close()


@pytest.mark.parametrize(
    "bad",
    ["../../x", "/abs", ".", "..", "", "a" * 129, "a\x1b[2Jb", "a/b", "a..b", "-x", "a\nb", "ü"],
)
def test_a_run_id_that_is_not_a_plain_name_is_refused(
    registry: SqliteRunRegistry, bad: str
) -> None:
    with pytest.raises(UserInputError, match=r"letters, digits, '\.', '_' and '-'") as refused:
        check_run_id(bad)
    assert "\n" not in str(refused.value) and "\x1b" not in str(refused.value)
    with pytest.raises(UserInputError, match="is not allowed"):
        registry.create(_record(bad))


def test_plain_run_ids_are_accepted() -> None:
    for good in ("20240101-120000-abc123", "run_1", "a", "v1.2-final", "A" * 128):
        assert check_run_id(good) == good
