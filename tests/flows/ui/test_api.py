"""The web view's JSON API: the runs list and its filters, errors as one JSON line with
the right status (never a 500, whatever the path holds), and a run's events as
server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from support.ui_kit import QUESTION, Runs, sse_messages, ui_client

from mirograph.flows.ui import api as api_module
from mirograph.state.registry import RUN_STATUSES
from mirograph.state.store import open_store


@pytest.fixture
def client(runs: Runs) -> Iterator[TestClient]:
    with ui_client(runs.store) as client:
        yield client


def ids(client: TestClient, query: str = "") -> list[str]:
    answer = client.get(f"/api/runs{query}")
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()["runs"]]


def test_the_runs_list_has_a_row_per_run_newest_first(client: TestClient) -> None:
    rows = {row["id"]: row for row in client.get("/api/runs").json()["runs"]}
    assert ids(client) == ["stalled", "rolled", "story"]
    usage = client.get("/api/runs/story").json()["run"]["usage"]
    story = rows["story"]
    assert (story["status"], story["question"], story["flow"]) == ("completed", QUESTION, "story")
    assert story["turns"] == usage["turns"] > 0
    assert story["tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    stalled = rows["stalled"]
    assert (stalled["status"], stalled["question"], stalled["turns"]) == (
        "paused",
        "Is the server there?",
        0,
    )


def test_the_runs_list_filters_by_status_and_text(client: TestClient) -> None:
    assert ids(client, "?status=paused") == ["stalled"]
    assert ids(client, "?status=completed") == ["rolled", "story"]
    assert ids(client, "?status=paused,completed") == ["stalled", "rolled", "story"]
    assert ids(client, "?status=failed") == []
    assert ids(client, "?q=ROLL") == ["rolled"]  # any case, in the id
    assert ids(client, "?q=server%20is") == []
    assert ids(client, "?q=the%20server") == ["stalled"]  # in the question
    assert ids(client, "?q=story") == ["stalled", "rolled", "story"]  # in the flow's name
    assert ids(client, "?q=story&status=completed&limit=1") == ["rolled"]
    assert ids(client, "?limit=1") == ["stalled"]
    assert ids(client, "?limit=2000") == ["stalled", "rolled", "story"]


def test_an_unknown_status_is_one_line_naming_the_valid_ones(client: TestClient) -> None:
    answer = client.get("/api/runs?status=completed,done")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "'done'" in error and "\n" not in error
    assert all(status in error for status in RUN_STATUSES)


@pytest.mark.parametrize("limit", ["0", "-1", "2001", "abc", "1e3", "9" * 40])
def test_a_limit_out_of_bounds_is_a_400(client: TestClient, limit: str) -> None:
    answer = client.get(f"/api/runs?limit={limit}")
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("limit must be")


def test_an_unknown_run_is_a_404_with_an_error(client: TestClient) -> None:
    answer = client.get("/api/runs/nope")
    assert answer.status_code == 404
    assert answer.json() == {"error": "no run 'nope' in this store; `mirograph ls` lists run ids"}
    for path in ("/calls/planner/turns", "/calls/planner/turns/1/results/0", "/events"):
        assert client.get(f"/api/runs/nope{path}").status_code == 404


@pytest.mark.parametrize(
    "run_id", ["..", "..%2Fx", "..%2F..%2Fetc%2Fpasswd", "a%20b", "%C3%A9t%C3%A9", "x" * 300, "%00"]
)
def test_a_bad_run_id_is_a_400_or_404_in_json(client: TestClient, run_id: str) -> None:
    for path in ("", "/calls/planner/turns", "/events", "/calls/planner/turns/1/results/0"):
        answer = client.get(f"/api/runs/{run_id}{path}")
        assert answer.status_code in (400, 404), (path, answer.text)
        assert answer.json()["error"], path


def test_an_unknown_api_path_is_a_404_in_json(client: TestClient) -> None:
    """The page reads ``error`` of every failed answer, even of a path no route has."""
    for path in ("/api/nothing", "/api/runs/story/calls", "/api/bench/-1/scaling.png"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["error"], path
    wrong = client.delete("/api/runs/story")
    assert wrong.status_code == 405 and wrong.json()["error"]


def test_a_missing_call_keeps_its_name_whole_in_the_error(client: TestClient) -> None:
    """The label is quoted as given (unicode, a slash, a '#'), not cut at a quote."""
    for label, shown in (
        ("%C3%A9t%C3%A9", "'été'"),
        ("a%2Fb", None),
        ("planner%232", "'planner#2'"),
    ):
        answer = client.get(f"/api/runs/story/calls/{label}/turns")
        assert answer.status_code == 404, label
        if shown is not None:
            assert answer.json() == {"error": f"run has no agent call {shown}"}
    answer = client.get("/api/runs/story/calls/planner/turns/99/results/0")
    assert answer.json() == {"error": "'planner' has no result 0 in turn 99"}


@pytest.mark.parametrize(
    "query", ["offset=-1", "offset=1000000001", f"offset={'9' * 30}", "limit=0", "limit=201"]
)
def test_turn_paging_out_of_bounds_is_a_400(client: TestClient, query: str) -> None:
    answer = client.get(f"/api/runs/story/calls/planner/turns?{query}")
    assert answer.status_code == 400 and answer.json()["error"]


def test_a_page_past_the_last_turn_is_empty_with_the_total(client: TestClient) -> None:
    page = client.get("/api/runs/story/calls/planner/turns?offset=1000000000&limit=200").json()
    assert page["turns"] == [] and page["total"] == 4 and page["offset"] == 1000000000


async def stored_events(store: str, run_id: str) -> list[tuple[int, dict]]:
    async with open_store(store) as opened:
        return await opened.events.read(run_id, 0)


def test_the_events_of_a_finished_run_stream_after_n_then_end(
    client: TestClient, runs: Runs
) -> None:
    stored = asyncio.run(stored_events(runs.store, "story"))
    assert len(stored) > 10
    answer = client.get("/api/runs/story/events?after=5")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    messages = sse_messages(answer.text)
    assert messages[-1]["event"] == "end" and messages[-1]["data"] == {"run_id": "story"}
    events = messages[:-1]
    assert [int(m["id"]) for m in events] == [seq for seq, _ in stored if seq > 5]
    assert [m["data"]["seq"] for m in events] == [int(m["id"]) for m in events]
    assert [m["data"]["event"] for m in events] == [e["event"] for seq, e in stored if seq > 5]
    assert events[-1]["data"]["event"] == "run_completed"


def test_last_event_id_is_honoured_before_after(client: TestClient, runs: Runs) -> None:
    stored = asyncio.run(stored_events(runs.store, "story"))
    last = stored[-3][0]
    answer = client.get("/api/runs/story/events?after=1", headers={"Last-Event-ID": str(last)})
    messages = sse_messages(answer.text)
    assert [int(m["id"]) for m in messages[:-1]] == [seq for seq, _ in stored[-2:]]
    assert messages[-1]["event"] == "end"
    for bad in ("-1", "x"):
        refused = client.get(f"/api/runs/story/events?after={bad}")
        assert refused.status_code == 400 and refused.json()["error"].startswith("after")
    assert client.get("/api/runs/story/events", headers={"Last-Event-ID": "x"}).status_code == 400


def test_event_streams_are_capped_and_each_frees_its_place_when_it_ends(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_module, "MAX_STREAMS", 1)
    for _ in range(2):  # one at a time: the first one's place is free again
        with client.stream("GET", "/api/runs/story/events") as stream:
            assert stream.status_code == 200
            assert "event: end" in "".join(stream.iter_text())
    monkeypatch.setattr(api_module, "MAX_STREAMS", 0)
    refused = client.get("/api/runs/story/events")
    assert refused.status_code == 503
    assert "event streams are open" in refused.json()["error"]


def test_a_path_the_api_lacks_is_answered_with_its_secrets_masked(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-uiSECRETvalue0123456789"
    monkeypatch.setenv("ANOTHER_API_KEY", secret)
    answer = client.get(f"/api/nothing/{secret}")
    assert answer.status_code == 404
    assert secret not in answer.text and "***" in answer.json()["error"]


def test_a_page_of_turns_asked_with_its_summarys_seq_comes_from_that_reading(
    client: TestClient,
) -> None:
    summary = client.get("/api/runs/story").json()
    label = summary["calls"][1]["label"]
    page = client.get(
        f"/api/runs/story/calls/{label.replace('#', '%23')}/turns?seq={summary['seq']}"
    )
    assert page.status_code == 200 and page.json()["seq"] == summary["seq"]
    assert page.json()["total"] == summary["calls"][1]["replies"]
    bad = client.get(f"/api/runs/story/calls/{label.replace('#', '%23')}/turns?seq=-5")
    assert bad.status_code == 400 and "seq" in bad.json()["error"]
