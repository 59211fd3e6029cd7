"""``mirograph demo``: deep-research offline, paused half-way and resumed, one command.

The CLI test runs the demo in a network namespace whose only interface is
loopback (bubblewrap ``--unshare-net``), so it proves the demo needs no network:
the simulated model, the corpus search and the Python sandbox (bubblewrap,
nested) all run on this machine. The API test drives ``run_demo`` directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.testkit import Cli, show

from mirograph.agents.mirothinker.parsing import parse_reply
from mirograph.agents.sim.demo_policy import demo
from mirograph.flows.demo import (
    DEMO_CORPUS,
    DEMO_NOTICE,
    DEMO_PAUSE_REASON,
    DEMO_QUESTION,
    run_demo,
)
from mirograph.flows.events import events_path, read_events
from mirograph.flows.runner import compiled_run, get_run, resume_run, run_report
from mirograph.graphs.run_control import RunControl
from mirograph.state.blobs import hydrate
from mirograph.state.store import open_store

#: 212 of the 540 houses (flood account; 1861 census), as the sandbox rounds it.
ANSWER = "39.3%"
#: Runs a command with no network but loopback (bwrap brings ``lo`` up), as root or not.
OFFLINE = ["bwrap", "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent", "--"]
PROBE = """
import errno, socket
print([name for _, name in socket.if_nameindex()])
try:
    socket.create_connection(("192.0.2.1", 80), timeout=5)
except OSError as exc:
    print(errno.errorcode.get(exc.errno, exc.errno))
"""


def offline(cli: Cli, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OFFLINE, *argv],
        env=cli.environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def the_run(home: Path) -> str:
    runs = [p.name for p in (home / "runs").iterdir()]
    assert len(runs) == 1, runs
    return runs[0]


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def assert_paused_half_way(events: list[dict[str, Any]]) -> None:
    """Started, paused once browsing reported (before coding began), resumed, completed."""
    runs = [n for n in names(events) if n.startswith("run_")]
    assert runs == ["run_started", "run_paused", "run_resumed", "run_completed"]
    paused = names(events).index("run_paused")
    before, after = events[:paused], events[paused + 1 :]
    assert events[paused]["reason"] == DEMO_PAUSE_REASON
    finished = [e["agent"] for e in before if e["event"] == "agent_finished" and e.get("ns")]
    assert finished == ["browsing"]
    assert not [e for e in before if e.get("agent") == "coding"]
    assert [e for e in after if e["event"] == "tool_call" and e["tool"] == "run_python_code"]
    assert len({e["run_id"] for e in events}) == 1


def test_demo_runs_offline_pauses_half_way_and_resumes(cli: Cli) -> None:
    probe = offline(cli, [sys.executable, "-c", PROBE])
    assert probe.stdout.split("\n")[:2] == ["['lo']", "ENETUNREACH"], probe

    result = offline(cli, cli.argv("demo"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for line in filter(None, DEMO_NOTICE.splitlines()):
        assert line in result.stderr
    assert f"answer: {ANSWER}" in result.stdout
    run_id = the_run(cli.home)
    trace = cli.home / "runs" / run_id / "events.jsonl"
    assert str(trace) in "".join(output.split())  # a narrow console may fold the path
    # The timeline: each agent's tool calls, in the output of `show`.
    for tool in ("search_and_browse", "local_search", "read_document", "run_python_code"):
        assert tool in result.stdout, tool

    report = show(cli, run_id)  # the default store: $MIROGRAPH_HOME/runs.db
    assert (report["status"], report["answer"], report["flow"]) == (
        "completed",
        ANSWER,
        "deep-research",
    )
    assert report["question"] == DEMO_QUESTION
    assert [(r["agent"], r["status"]) for r in report["invocations"]] == [
        ("browsing", "completed"),
        ("coding", "completed"),
    ]
    events = list(read_events(trace))
    assert_paused_half_way(events)
    # The sandbox ran the coding agent's code: its output, and the file it wrote.
    [python] = [e for e in events if e["event"] == "tool_call" and e["tool"] == "run_python_code"]
    assert python["outcome"] == "ok" and f"share = {ANSWER}" in python["result"]
    assert (cli.home / "runs" / run_id / "workspace" / "flood_share.txt").read_text() == "39.3%\n"


async def stored_browsing_tools(run_id: str, store: str) -> Any:
    """The browsing agent's tools as the run stored them (what resume rebuilds)."""
    async with open_store(store) as opened:
        return get_run(opened, run_id).flow_spec["agents"]["browsing"]["tools"]


async def planner_history(run_id: str, store: str) -> list[str]:
    """The planner's messages as stored, long tool results restored from their blobs."""
    async with open_store(store) as opened:
        async with compiled_run(opened, get_run(opened, run_id)) as run:
            snapshot = await run.graph.aget_state(run.config)
        messages = await hydrate(snapshot.values["messages"], opened.blobs)
    return [m.text for m in messages]


async def test_run_demo_pauses_after_the_first_sub_agent_and_completes_on_resume(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Neither a search key nor the user's model server is needed; the demo ignores both.
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.setenv("MIROGRAPH_BASE_URL", "http://127.0.0.1:9/v1")
    store = f"sqlite:///{tmp_path / 'demo.db'}"
    seen: list[dict[str, Any]] = []
    control = RunControl(on_event=seen.append)

    result = await run_demo(control, store_url=store)

    assert (result.status, result.answer, result.reason) == ("completed", ANSWER, None)
    assert result.paused_reason == DEMO_PAUSE_REASON
    assert_paused_half_way(seen)
    assert seen[0]["run_id"] == result.run_id
    assert list(read_events(events_path(result.run_id))) == seen  # the same trace on disk

    report = await run_report(result.run_id, store_url=store)
    assert (report["status"], report["answer"]) == ("completed", ANSWER)
    agents = report["agents"]
    assert (agents["planner"]["turns"], agents["planner"]["tool_calls"]) == (3, 2)
    assert agents["browsing"]["tool_calls"] == 4 and agents["coding"]["tool_calls"] == 1
    assert agents["reasoning"]["turns"] == 0
    browsing = json.dumps(await stored_browsing_tools(result.run_id, store))
    assert str(DEMO_CORPUS.resolve()) in browsing and "search" not in browsing

    history = await planner_history(result.run_id, store)
    [browsing_report, coding_report] = [h for h in history if h.startswith(("Findings", "Ran"))]
    assert "Houses destroyed by the flood: 212. Source: doc://great-flood-1868.txt" in (
        browsing_report
    )
    assert "Inhabited houses at the 1861 census: 540. Source: doc://census-returns.pdf" in (
        browsing_report
    )
    assert f"Sandbox output:\nshare = {ANSWER}" in coding_report
    # Finished for good: resuming again changes nothing and needs no model.
    again = await resume_run(result.run_id, store_url=store)
    assert (again.status, again.answer) == ("completed", ANSWER)


def test_the_policy_takes_every_figure_from_the_tool_results() -> None:
    """Other documents, other numbers: the scripted model follows what its tools return."""
    planner = "## Server name: agent-browsing\n## Server name: agent-coding"
    report = (
        "Findings from the local document collection:\n"
        '- Houses destroyed by the flood: 1,000. Source: doc://a.txt, "..."\n'
        '- Inhabited houses at the 1861 census: 4,000. Source: doc://b.pdf, "..."'
    )
    reply = demo(
        {
            "messages": [
                {"role": "system", "content": planner},
                {"role": "user", "content": "question"},
                {"role": "assistant", "content": "delegating"},
                {"role": "user", "content": report},
            ]
        }
    )
    [call] = parse_reply(reply).calls
    assert (call.server, call.tool) == ("agent-coding", "write_and_run_code")
    subtask = call.arguments["subtask"]
    assert "houses_destroyed = 1000" in subtask and "houses_1861 = 4000" in subtask

    coding = demo(
        {
            "messages": [
                {"role": "system", "content": "## Server name: tool-python"},
                {"role": "user", "content": subtask},
            ]
        }
    )
    [run] = parse_reply(coding).calls
    assert "houses_destroyed = 1000\nhouses_1861 = 4000\n" in run.arguments["code_block"]

    answer = demo(
        {
            "messages": [
                {"role": "system", "content": planner},
                {"role": "user", "content": "question"},
                {"role": "assistant", "content": "delegating"},
                {"role": "user", "content": report},
                {"role": "assistant", "content": "delegating"},
                {"role": "user", "content": "Sandbox output:\nshare = 25.0%"},
            ]
        }
    )
    assert parse_reply(answer).calls == [] and answer.endswith("\\boxed{25.0%}")

    hits = json.dumps({"organic": [{"doc_id": "a.txt"}]})
    read_a = "A (doc://a.txt), characters 0-50 of 50\n\nOf the 4,000 houses,\n1,000 were destroyed."
    read_b = "B (doc://b.pdf), characters 0-40 of 40\n\nInhabited houses: 9 in 1801, 4,000 in 1861."
    browsing = demo(
        {
            "messages": [
                {"role": "system", "content": "## Server name: tool-local-corpus"},
                {"role": "user", "content": "find the figures"},
                *[
                    message
                    for result in (hits, read_a, hits, read_b)
                    for message in (
                        {"role": "assistant", "content": "searching or reading"},
                        {"role": "user", "content": result},
                    )
                ],
            ]
        }
    )
    assert parse_reply(browsing).calls == []
    assert (
        '- Houses destroyed by the flood: 1000. Source: doc://a.txt, "Of the 4,000 houses,'
        ' 1,000 were destroyed."' in browsing
    )
    assert "- Inhabited houses at the 1861 census: 4000. Source: doc://b.pdf" in browsing
