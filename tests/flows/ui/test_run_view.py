"""A run as the web view reads it: the agent tree with what ``show --json`` counts, the
timeline, tokens per turn, pages of turns with previews and full results, notes
from the events, secrets masked in every answer, and a custom-graph run whose
builder is gone."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support.examples_policy import verify
from support.testkit import Cli
from support.transcript_tools import page
from support.ui_kit import PLAIN_SECRET, QUESTION, Runs, ui_client

from mirograph.agents.sim.server import SimServer
from mirograph.flows.runner import start_run
from mirograph.flows.ui.run_view import PREVIEW_CHARS

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def shown(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``mirograph show story --json``: what the CLI reports of the same run."""
    cli = Cli(tmp_path_factory.mktemp("ui-show-home"))
    result = cli("show", "story", "--store", runs.store, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def client(runs: Runs) -> Iterator[TestClient]:
    with ui_client(runs.store) as client:
        yield client


def turns_page(client: TestClient, run_id: str, label: str, query: str = "") -> dict[str, Any]:
    answer = client.get(f"/api/runs/{run_id}/calls/{label.replace('#', '%23')}/turns{query}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_agent_tree_counts_what_show_reports(
    client: TestClient, shown: dict[str, Any], runs: Runs
) -> None:
    summary = client.get("/api/runs/story").json()
    assert summary["run"]["answer"] == runs.answers["story"] == shown["answer"]
    calls = {row["label"]: row for row in summary["calls"]}
    assert [(r["label"], r["agent"], r["parent"], r["depth"], r["parent_turn"])
            for r in summary["calls"]] == [
        ("planner", "planner", None, 0, None),
        ("browsing#1", "browsing", "planner", 1, 1),
        ("coding#1", "coding", "planner", 1, 1),
    ]  # fmt: skip
    by_ns = {row["checkpoint_ns"]: row for row in shown["invocations"]}
    expected = {"planner": shown["agents"]["planner"]}
    expected |= {row["label"]: by_ns[row["ns"]] for row in summary["calls"] if row["ns"]}
    for label, want in expected.items():
        row = calls[label]
        for key in ("turns", "tool_calls", "prompt_tokens", "completion_tokens", "cached_tokens"):
            assert row[key] == want[key], (label, key)
        assert row["status"] == "completed"
        tokens = summary["tokens"][label]
        # one row per reply: [number, prompt, cached, completion], the closing one included
        assert [t[0] for t in tokens] == list(range(1, row["replies"] + 1))
        assert sum(t[1] for t in tokens) == want["prompt_tokens"]
        assert sum(t[2] for t in tokens) == want["cached_tokens"]
        assert sum(t[3] for t in tokens) == want["completion_tokens"]
        turns = turns_page(client, "story", label, "?limit=200")
        assert turns["total"] == row["replies"]
        assert sum(not t["closing"] for t in turns["turns"]) == row["turns"]


def test_the_timeline_has_the_session_and_a_span_per_call(client: TestClient) -> None:
    timeline = client.get("/api/runs/story").json()["timeline"]
    (session,) = timeline["sessions"]
    assert session["ended"] == "run_completed" and session["start"] < session["end"]
    spans = timeline["spans"]
    assert spans["planner"] == [[session["start"], session["end"]]]
    for label in ("browsing#1", "coding#1"):
        ((start, end),) = spans[label]
        assert session["start"] < start < end < session["end"], label


def test_turns_come_a_page_at_a_time_with_previews_and_full_results(client: TestClient) -> None:
    first = turns_page(client, "story", "browsing#1", "?offset=1&limit=2")
    assert (first["label"], first["total"], first["offset"]) == ("browsing#1", 5, 1)
    assert [t["n"] for t in first["turns"]] == [2, 3]
    turn = first["turns"][0]
    assert (turn["thinking"], turn["text"], turn["closing"]) == ("Page 2 next.", "Reading.", False)
    (call,) = turn["calls"]
    assert (call["name"], call["args"], call["sub"]) == (
        "fetch",
        {"topic": "browsing", "step": 2},
        None,
    )
    full = page("browsing", 2)
    assert len(full) > PREVIEW_CHARS
    result = call["result"]
    assert result == {"index": 0, "chars": len(full), "preview": full[:PREVIEW_CHARS],
                      "error": False}  # fmt: skip
    text = client.get("/api/runs/story/calls/browsing%231/turns/2/results/0").json()["text"]
    assert text == full
    last = turns_page(client, "story", "browsing#1", "?offset=4")
    assert [(t["n"], t["closing"], t["text"]) for t in last["turns"]] == [
        (5, True, "REPORT[browsing:3]")
    ]


def test_the_planners_calls_link_to_the_sub_agents_they_started(client: TestClient) -> None:
    delegation = turns_page(client, "story", "planner", "?limit=1")["turns"][0]
    assert delegation["thinking"] == "I will split the work."
    assert [(c["name"], c["sub"]) for c in delegation["calls"]] == [
        ("search_and_browse", "browsing#1"),
        ("write_and_run_code", "coding#1"),
    ]
    assert delegation["calls"][0]["result"]["preview"] == "REPORT[browsing:3]"
    assert delegation["calls"][1]["args"]["subtask"].startswith("Sub-task for coding: How do")


@pytest.mark.parametrize(
    "path",
    [
        "calls/browsing%232/turns",
        "calls/browsing%231/turns/6/results/0",
        "calls/browsing%231/turns/0/results/0",
        "calls/browsing%231/turns/1/results/1",
        "calls/browsing%231/turns/5/results/0",  # the closing turn ran no tool
        "calls/browsing/turns/1/results/0",
    ],
)
def test_a_missing_call_turn_or_result_is_a_404(client: TestClient, path: str) -> None:
    answer = client.get(f"/api/runs/story/{path}")
    assert answer.status_code == 404 and answer.json()["error"]


def test_a_rolled_back_turn_carries_a_note(client: TestClient) -> None:
    calls = {r["label"]: r for r in client.get("/api/runs/rolled").json()["calls"]}
    assert calls["coding#1"]["rollbacks"] == 1 and calls["browsing#1"]["rollbacks"] == 0
    coding = turns_page(client, "rolled", "coding#1")["turns"]
    assert coding[0]["notes"] == ["rolled back: tool error: broken"]
    assert coding[0]["calls"][0]["result"]["error"] is True  # shown once the rollback was spent
    assert all(t["notes"] == [] for t in coding[1:])
    assert all(t["notes"] == [] for t in turns_page(client, "rolled", "browsing#1")["turns"])


def everything(client: TestClient, run_id: str) -> str:
    """Every answer the API gives about ``run_id``, as one text."""
    summary = client.get(f"/api/runs/{run_id}")
    answers = [client.get("/api/runs"), client.get("/api/runs?q=alpha"), summary]
    for call in summary.json()["calls"]:
        label = call["label"].replace("#", "%23")
        answer = client.get(f"/api/runs/{run_id}/calls/{label}/turns?limit=200")
        answers.append(answer)
        for turn in answer.json()["turns"]:
            for i, _ in enumerate(c for c in turn["calls"] if c["result"]):
                answers.append(
                    client.get(f"/api/runs/{run_id}/calls/{label}/turns/{turn['n']}/results/{i}")
                )
    answers.append(client.get(f"/api/runs/{run_id}/events"))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return "\n".join(a.text for a in answers)


def test_a_secret_in_the_environment_appears_in_no_answer(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = everything(client, "story")  # the store holds it: the run's env had no such key
    assert before.count(PLAIN_SECRET) >= 5
    monkeypatch.setenv("SOME_API_KEY", PLAIN_SECRET)
    after = everything(client, "story")
    assert PLAIN_SECRET not in after
    assert after.count("***") >= before.count(PLAIN_SECRET)
    run = client.get("/api/runs/story").json()["run"]
    assert run["question"] == QUESTION.replace(PLAIN_SECRET, "***")


async def test_a_custom_graph_run_is_shown_after_its_builder_vanished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIROGRAPH_HOME", str(tmp_path / "home"))
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    graph = tmp_path / "mine" / "verify_loop.py"
    graph.parent.mkdir()
    shutil.copy(EXAMPLES / "verify_loop.py", graph)
    with SimServer(verify) as srv:
        monkeypatch.setenv("MIROGRAPH_BASE_URL", srv.base_url)
        ref = f"{graph}:build_graph"
        outcome = await start_run("Q?", ref, run_id="moved", store_url=store)
    assert outcome.answer == "42"
    graph.unlink()
    with ui_client(store) as client:
        summary = client.get("/api/runs/moved")
        assert summary.status_code == 200, summary.text
        body = summary.json()
        assert body["run"]["warnings"] == [
            f"graph {ref!r}: file {str(graph)!r} does not exist; shown from the store"
        ]
        labels = [c["label"] for c in body["calls"]]
        assert labels == ["planner#1", "researcher#1", "verifier#1", "researcher#2", "verifier#2"]
        turns = client.get("/api/runs/moved/calls/verifier%231/turns").json()
        assert turns["total"] >= 1 and "REJECT" in json.dumps(turns["turns"])
