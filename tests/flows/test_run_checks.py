"""What a run refuses up front (unsafe ids, a question that cannot fit) and how
it ends without an answer (``no_answer``, exit 4, with the reason)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.testkit import Cli

from mirograph.agents.sim.server import SimServer
from mirograph.errors import FlowError, UserInputError
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import (
    resume_run,
    run_dir,
    run_report,
    start_run,
)
from mirograph.flows.runs import request_pause

BAD_IDS = ["../../x", "/abs", ".", "..", "", "x" * 129, "a\x07b", "a/b"]


@pytest.fixture
def unboxed() -> Any:
    """The policy of a model that never boxes an answer (and never calls a tool)."""
    from support.unboxed_policy import unboxed

    return unboxed


def flow(base_url: str, **model: Any) -> Any:
    return validate_flow(
        {
            "name": "one",
            "models": {"m": {"base_url": base_url, "max_tokens": 512, **model}},
            "agents": {"main": {"model": "m", "max_turns": 3}},
            "entry": "main",
        }
    )


def write_flow(path: Path, base_url: str, **model: Any) -> Path:
    spec = {
        "name": "one",
        "models": {"m": {"base_url": base_url, "max_tokens": 512, **model}},
        "agents": {"main": {"model": "m", "max_turns": 3}},
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


async def test_a_run_without_an_answer_ends_no_answer_with_the_reason(
    home: Path, tmp_path: Path, unboxed: Any
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(unboxed) as srv:
        outcome = await start_run("What is 3+4?", flow(srv.base_url), run_id="n", store_url=store)
        assert outcome.status == "no_answer"
        assert outcome.answer is None
        assert outcome.reason is not None
        assert outcome.reason.startswith(
            "the main agent ended without a boxed answer (stop reason:"
        )
        report = await run_report("n", store_url=store)
        assert (report["status"], report["reason"]) == ("no_answer", outcome.reason)
        asked = len(srv.requests)
        again = await resume_run("n", store_url=store)  # returned as it is, nothing runs
        assert (again.status, again.reason) == ("no_answer", outcome.reason)
        assert len(srv.requests) == asked


def test_the_cli_exits_4_and_says_why(cli: Cli, sim_model, tmp_path: Path) -> None:
    path = write_flow(tmp_path / "one.yaml", sim_model("support.unboxed_policy:unboxed"))
    ran = cli("run", "What is 3+4?", "--flow", str(path), "--id", "n", "--store", cli.store)
    assert ran.returncode == 4, ran.stderr
    assert ran.stderr.strip().startswith(
        "error: run n ended without an answer: the main agent ended without a boxed answer"
    )
    assert ran.stdout == ""


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_unsafe_run_ids_are_refused_by_every_entry(
    home: Path, tmp_path: Path, bad: str
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    entries = [
        lambda: start_run("q", flow("http://127.0.0.1:9/v1"), run_id=bad, store_url=store),
        lambda: resume_run(bad, store_url=store),
        lambda: run_report(bad, store_url=store),
        lambda: request_pause(bad, store_url=store),
    ]
    for entry in entries:
        with pytest.raises(UserInputError, match="is not allowed: use letters, digits") as refused:
            await entry()
        assert "\n" not in str(refused.value)
    with pytest.raises(UserInputError, match="is not allowed"):
        run_dir(bad)
    assert not (home / "runs").exists()  # no directory was made for it


def test_the_cli_refuses_an_unsafe_id_in_one_line(cli: Cli, tmp_path: Path) -> None:
    path = write_flow(tmp_path / "one.yaml", "http://127.0.0.1:9/v1")
    ran = cli("run", "q", "--flow", str(path), "--id", "../../x", "--store", cli.store)
    assert ran.returncode == 2
    assert ran.stderr.strip() == (
        "error: run id '../../x' is not allowed: use letters, digits, '.', '_' and '-',"
        " starting with a letter or digit, at most 128 (no '..')"
    )
    assert not (cli.home.parent / "x").exists()


async def test_a_question_that_cannot_fit_is_refused_before_the_run_is_stored(
    home: Path, tmp_path: Path, unboxed: Any
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(unboxed) as srv:
        small = flow(srv.base_url, context_tokens=4096)
        with pytest.raises(UserInputError) as refused:
            await start_run("Why? " * 2000, small, run_id="big", store_url=store)
        message = str(refused.value)
        assert "\n" not in message
        assert "does not fit agent 'main'" in message
        assert "of 4096 context_tokens" in message and "max_tokens 512" in message
        assert "shorten the question" in message
        assert srv.requests == []
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        assert conn.execute("SELECT count(*) FROM mirograph_runs").fetchone() == (0,)


async def test_start_run_refuses_a_flow_whose_tool_key_is_missing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flow validated in Python (not through ``load_flow``) is checked for keys too."""
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = {
        "name": "web",
        "models": {"m": {"base_url": "http://127.0.0.1:9/v1", "max_tokens": 512}},
        "agents": {"main": {"model": "m", "max_turns": 3, "tools": ["search"]}},
        "entry": "main",
    }
    with pytest.raises(FlowError, match="TAVILY_API_KEY"):
        await start_run("What is new?", validate_flow(spec), run_id="web", store_url=store)
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "mirograph_runs" in tables:
            assert conn.execute("SELECT count(*) FROM mirograph_runs").fetchone() == (0,)


async def test_an_unwritable_home_is_one_line_through_the_python_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unboxed: Any
) -> None:
    """The CLI checks MIROGRAPH_HOME first; a Python caller gets the same kind of line."""
    home = tmp_path / "home-file"
    home.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("MIROGRAPH_HOME", str(home))
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(unboxed) as srv, pytest.raises(UserInputError) as refused:
        await start_run("Why?", flow(srv.base_url), run_id="homeless", store_url=store)
    message = str(refused.value)
    assert "\n" not in message and "set MIROGRAPH_HOME to a writable folder" in message
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        assert conn.execute("SELECT count(*) FROM mirograph_runs").fetchone() == (0,)
