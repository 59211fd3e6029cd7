"""Starting, pausing and resuming runs through the API, with the CLI's effects: a broken
flow or question is refused before anything runs; a start is a real run that
completes; a pause stops a running run at its next step and a resume finishes it
with the CLI's answer; what the run's state does not allow is a 409."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support.team_policy import team
from support.testkit import TESTS, Cli, held_run, release, write_team_flow
from support.transcript_kit import killed_team_run
from support.ui_kit import ui_client, wait_until

from mirograph.agents.sim.server import SimServer
from mirograph.state.registry import RunRecord
from mirograph.state.store import open_store

BROWSING, CODING = 6, 2
ANSWER = f"REPORT[browsing:{BROWSING}], REPORT[coding:{CODING}]"


@pytest.fixture
def model(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A sim-model in this process; the runs the UI starts find ``support`` too."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS),
                       os.environ.get("PYTHONPATH")])))  # fmt: skip
    with SimServer(partial(team, browsing=BROWSING, coding=CODING)) as srv:
        yield srv.base_url


@pytest.fixture
def client(cli: Cli) -> Iterator[TestClient]:
    with ui_client(cli.store) as client:
        yield client


def run_of(client: TestClient, run_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def status_of(client: TestClient, run_id: str) -> str | None:
    """The run's status in the runs list (the registry only: cheap to ask often)."""
    rows = client.get(f"/api/runs?q={run_id}").json()["runs"]
    return next((row["status"] for row in rows if row["id"] == run_id), None)


async def record_of(store: str, run_id: str) -> RunRecord:
    async with open_store(store) as opened:
        return opened.registry.get(run_id)


def no_run_started(client: TestClient, home: Path) -> None:
    assert client.get("/api/runs").json() == {"runs": []}
    assert not (home / "ui").exists()  # no process was started (each writes a log there)


@pytest.mark.parametrize(
    ("flow", "said"),
    [
        ("bad.yaml", "bogus: unknown key; remove it or check its spelling"),
        ("missing.yaml", "missing.yaml' does not exist"),
        ("gone.py:build_graph", "gone.py' does not exist"),
        ("no_such_package_here.graphs:build", "cannot import 'no_such_package_here.graphs'"),
        ("no-such-shipped-flow", "no-such-shipped-flow"),
    ],
)
def test_a_broken_flow_is_refused_before_anything_runs(
    client: TestClient, home: Path, tmp_path: Path, model: str, flow: str, said: str
) -> None:
    bad = write_team_flow(tmp_path / "bad.yaml", model)
    bad.write_text(bad.read_text() + "bogus: 1\n")
    named = str(tmp_path / flow) if flow.startswith(("bad", "missing", "gone")) else flow
    answer = client.post("/api/runs", json={"question": "Compare.", "flow": named})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert said in error and "\n" not in error
    no_run_started(client, home)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"question": "   "}, "the question is empty"),
        ({}, "send the question as text"),
        ({"question": 3}, "send the question as text"),
        ({"question": "q", "flow": ["x"]}, "send the flow as its name or path"),
        ({"question": "q", "set": "a=1"}, "send overrides as a list"),
        ({"question": "q", "set": ["nokey"]}, "nokey"),
        ({"question": "x" * 200_001}, "the question has 200,001 characters"),
        ([1, 2], "send a JSON object"),
    ],
)
def test_a_bad_start_is_a_400_and_starts_nothing(
    client: TestClient, home: Path, body: Any, said: str
) -> None:
    answer = client.post("/api/runs", json=body)
    assert answer.status_code == 400, answer.text
    assert said in answer.json()["error"]
    no_run_started(client, home)


def test_a_body_that_is_too_big_or_not_json_starts_nothing(client: TestClient, home: Path) -> None:
    json_type = {"Content-Type": "application/json"}
    big = b'{"question": "' + b"x" * 5_000_000 + b'"}'
    answer = client.post("/api/runs", content=big, headers=json_type)
    assert answer.status_code == 400
    assert answer.json() == {"error": "the request body is over 1,000,000 bytes"}
    broken = client.post("/api/runs", content=b'{"question": ', headers=json_type)
    assert broken.json() == {"error": "the request body is not JSON"}
    form = client.post("/api/runs", data={"question": "Compare."})
    assert form.status_code == 415
    foreign = client.post(
        "/api/runs", json={"question": "Compare."}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    no_run_started(client, home)


def test_a_started_run_completes_and_then_can_be_neither_paused_nor_resumed(
    client: TestClient, cli: Cli, home: Path, tmp_path: Path, model: str
) -> None:
    flow = write_team_flow(tmp_path / "team.yaml", model)
    started = client.post(
        "/api/runs",
        json={"question": "Compare alpha and beta.", "flow": str(flow),
              "set": ["agents.browsing.max_turns=30"]},
    )  # fmt: skip
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    assert list(started.json()) == ["id"]
    wait_until("the run to complete", lambda: status_of(client, run_id) == "completed")
    run = run_of(client, run_id)["run"]
    assert run["answer"] == ANSWER and run["question"] == "Compare alpha and beta."
    assert (home / "ui" / f"{run_id}.log").is_file()
    record = asyncio.run(record_of(cli.store, run_id))
    assert record.flow_spec["agents"]["browsing"]["max_turns"] == 30  # the override reached it
    paused = client.post(f"/api/runs/{run_id}/pause", json={})
    assert paused.status_code == 409
    assert paused.json() == {
        "error": f"run {run_id} is completed, not running: there is nothing to pause"
    }
    resumed = client.post(f"/api/runs/{run_id}/resume", json={})
    assert resumed.status_code == 409
    assert "nothing to resume" in resumed.json()["error"]
    assert client.post("/api/runs/nope/resume", json={}).status_code == 404
    assert client.post("/api/runs/..%2Fx/pause", json={}).status_code in (400, 404)


def test_a_run_paused_from_the_api_is_resumed_from_it_and_finishes_exactly(
    client: TestClient, cli: Cli, tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, fifo, go = tmp_path / "team.log", tmp_path / "held.fifo", tmp_path / "go.fifo"
    os.mkfifo(fifo)
    os.mkfifo(go)
    cli.env.update({"TEAM_LOG": str(log), "PAUSE_FIFO": str(fifo), "PAUSE_GO": str(go)})
    monkeypatch.setenv("TEAM_LOG", str(log))  # for the resume the UI starts
    flow = write_team_flow(
        tmp_path / "team.yaml",
        model,
        browsing="support.pause_tools:lookup",
        coding="support.pause_tools:compute",
    )
    with held_run(cli, flow, fifo) as runner:
        assert [r["status"] for r in client.get("/api/runs?status=running").json()["runs"]] == [
            "running"
        ]
        # many readers of a running run at once: one reading at a time, each answer whole
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client.get("/api/runs/held"), range(16)))
        assert {a.status_code for a in answers} == {200}
        labels = {tuple(c["label"] for c in a.json()["calls"]) for a in answers}
        assert all(ls[0] == "planner" for ls in labels), labels
        assert client.post("/api/runs/held/resume", json={}).status_code == 409

        asked = client.post("/api/runs/held/pause", json={})
        assert asked.status_code == 202
        assert asked.json() == {"id": "held", "pause_requested": True}
        release(go)
        _, stderr = runner.communicate(timeout=60)
        assert runner.returncode == 3, stderr
        assert "paused from the web view" in stderr

    first = run_of(client, "held")
    assert first["run"]["status"] == "paused"
    (session,) = first["timeline"]["sessions"]
    assert (session["ended"], session["reason"]) == ("run_paused", "paused from the web view")
    browsing = next(c for c in first["calls"] if c["agent"] == "browsing")
    assert (browsing["status"], browsing["turns"]) == ("running", 3)
    assert len(first["tokens"][browsing["label"]]) == 3
    assert client.post("/api/runs/held/pause", json={}).status_code == 409

    resumed = client.post("/api/runs/held/resume", json={})
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["id"] == "held"
    assert resumed.json()["status"] in ("running", "completed")
    wait_until("the resumed run to complete", lambda: status_of(client, "held") == "completed")
    done = run_of(client, "held")
    assert done["run"]["answer"] == ANSWER  # what `mirograph resume` prints
    ended = [(s["ended"], s["reason"]) for s in done["timeline"]["sessions"]]
    assert ended == [("run_paused", "paused from the web view"), ("run_completed", None)]
    sessions = done["timeline"]["sessions"]
    assert sessions[0]["end"] <= sessions[1]["start"]
    for call in done["calls"]:
        spans = done["timeline"]["spans"][call["label"]]
        assert spans and all(start <= end for start, end in spans), call["label"]
        assert len(done["tokens"][call["label"]]) == call["replies"] >= call["turns"]
    counts = Counter(log.read_text().splitlines())
    assert {line for line, n in counts.items() if n > 1} == set()  # no tool call repeated
    assert counts[f"lookup browsing {BROWSING}"] == 1


def test_a_killed_run_shows_paused_and_is_resumed_from_the_api(
    client: TestClient, cli: Cli, tmp_path: Path, model: str
) -> None:
    """SIGKILL leaves the row ``running`` with a dead owner: the view calls it paused,
    the resume is allowed, and the killed session shows as stopped in the timeline."""
    killed_team_run(cli, model, tmp_path, "killed")
    assert status_of(client, "killed") == "paused"
    before = run_of(client, "killed")["timeline"]["sessions"]
    assert [(s["ended"], s["end"]) for s in before] == [(None, None)]  # no end was written
    with ThreadPoolExecutor(2) as pool:  # a double click: one resume, not two processes
        answers = list(pool.map(lambda _: client.post("/api/runs/killed/resume", json={}), [1, 2]))
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()["error"]
    assert refused in ("run killed is being resumed", "run killed is already running")
    wait_until("the resumed run to complete", lambda: status_of(client, "killed") == "completed")
    done = run_of(client, "killed")
    assert done["run"]["answer"] == ANSWER
    ended = [s["ended"] for s in done["timeline"]["sessions"]]
    assert ended == ["stopped", "run_completed"]
