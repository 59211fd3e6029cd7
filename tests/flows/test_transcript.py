"""A run's transcripts: every agent call in call order, with its full stored history."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.examples_policy import native, verify
from support.team_policy import team
from support.testkit import Cli
from support.transcript_kit import SECRET, TeamRun, killed_team_run, team_run
from support.transcript_tools import page

from mirograph.agents.sim.server import SimServer
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run
from mirograph.flows.transcript import load_transcripts, message_turns, turns_of
from mirograph.state.blobs import BLOB_KEY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COUNTERS = ("turns", "tool_calls", "model_calls", "prompt_tokens", "completion_tokens")


@pytest.fixture
async def run(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TeamRun:
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)
    return await team_run(tmp_path)


async def test_every_call_in_call_order_with_its_full_history(run: TeamRun) -> None:
    transcript = await load_transcripts(run.run_id, store_url=run.store)
    assert transcript.report["status"] == "completed"
    planner, browsing, coding = transcript.calls
    assert [(c.label, c.agent, c.parent, c.depth) for c in transcript.calls] == [
        ("planner", "planner", None, 0),
        ("browsing#1", "browsing", "planner", 1),
        ("coding#1", "coding", "planner", 1),
    ]
    delegation = planner.messages[2]
    assert [browsing.call_id, coding.call_id] == [c["id"] for c in delegation.tool_calls]
    assert [(c.parent_turn, c.parent_call_index) for c in (browsing, coding)] == [(1, 0), (1, 1)]
    assert browsing.subtask == "Sub-task for browsing: How do alpha and beta compare?"
    assert (planner.status, planner.stop_reason, planner.checkpoint_ns) == (
        "completed",
        "answered",
        "",
    )
    rows = transcript.report["invocations"]
    for call, row in zip((browsing, coding), rows, strict=True):
        assert (call.status, call.stop_reason) == ("completed", "answered")
        assert call.checkpoint_ns == row["checkpoint_ns"] != ""
        assert {k: call.stats[k] for k in COUNTERS} == {k: row[k] for k in COUNTERS}
    assert transcript.children("planner") == [browsing, coding]

    for call in transcript.calls:
        replies = [m for m in call.messages if m.type == "ai"]
        # As the model sent them, with the secret it repeated masked before storing.
        assert [m.content for m in replies] == [
            r.replace(SECRET, "***") for r in run.replies(call.agent)
        ]
        usage = [m.usage_metadata for m in replies]
        assert [u["input_tokens"] for u in usage] == [
            u["prompt_tokens"] for u in run.usage(call.agent)
        ]
    results = [m for m in browsing.messages if m.type == "tool"]
    assert [m.content for m in results] == [page("browsing", n) for n in (1, 2, 3)]
    # Each was stored as a blob with a short preview; the transcript reads it back whole.
    assert all(BLOB_KEY in m.additional_kwargs for m in results)
    turns = turns_of(browsing.messages)
    assert [(t.number, len(t.results), t.closing) for t in turns] == [
        (1, 1, False),
        (2, 1, False),
        (3, 1, False),
        (4, 0, False),
        (5, 0, True),
    ]


def test_turn_numbers_group_each_reply_with_its_results() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    call = {"name": "f", "args": {}, "id": "c1"}
    history = [
        SystemMessage("s"),
        HumanMessage("task"),
        AIMessage("a", tool_calls=[call]),
        ToolMessage("r", tool_call_id="c1"),
        AIMessage("done"),
        HumanMessage("closing request"),
        AIMessage("report"),
    ]
    assert message_turns(history) == [0, 0, 1, 1, 2, 3, 3]
    turns = turns_of(history)
    assert [(t.number, [r.content for r in t.results], t.closing) for t in turns] == [
        (1, ["r"], False),
        (2, [], False),
        (3, [], True),
    ]


async def test_a_killed_run_reads_the_call_in_flight_from_its_last_checkpoint(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    killed_team_run(
        cli, sim_model("support.team_policy:team?browsing=9&coding=3"), tmp_path, "killed"
    )
    transcript = await load_transcripts("killed", store_url=cli.store)
    assert transcript.report["status"] == "paused"
    planner = transcript.calls[0]
    assert (planner.label, planner.status) == ("planner", "running")
    browsing = next(c for c in transcript.calls if c.agent == "browsing")
    assert (browsing.label, browsing.parent, browsing.status) == (
        "browsing#1",
        "planner",
        "running",
    )
    assert browsing.stats["turns"] == 3
    # The report does not know an in-flight call's id: it is found in the planner's reply.
    delegation = planner.messages[2]
    assert browsing.call_id == delegation.tool_calls[0]["id"]
    assert browsing.parent_turn == 1
    last = browsing.messages[-1]
    assert last.type == "ai" and last.tool_calls[0]["args"] == {"topic": "browsing", "step": 3}
    assert [len(t.results) for t in turns_of(browsing.messages)] == [1, 1, 0]


async def test_nested_calls_hang_under_the_call_that_made_them(tmp_path: Path, home: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(lambda body: team(body, browsing=2, coding=1)) as srv:
        flow = validate_flow(
            {
                "name": "nested",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 512}},
                "agents": {
                    "planner": {"model": "m", "role": "main", "sub_agents": ["browsing"]},
                    "browsing": {
                        "model": "m",
                        "tools": ["support.team_tools:lookup"],
                        "sub_agents": ["coding"],
                    },
                    "coding": {"model": "m", "tools": ["support.team_tools:compute"]},
                },
                "entry": "planner",
            }
        )
        outcome = await start_run("Q?", flow, run_id="nested", store_url=store)
    assert outcome.status == "completed", outcome.reason
    transcript = await load_transcripts("nested", store_url=store)
    _, browsing, coding = transcript.calls
    assert [(c.label, c.parent, c.depth) for c in transcript.calls] == [
        ("planner", None, 0),
        ("browsing#1", "planner", 1),
        ("coding#1", "browsing#1", 2),
    ]
    assert coding.checkpoint_ns.startswith(browsing.checkpoint_ns + "|")
    assert (coding.parent_turn, coding.parent_call_index) == (1, 1)
    assert coding.messages[1].content.startswith("Sub-task for coding: help")
    assert next(m.content for m in coding.messages if m.type == "tool").startswith(
        "compute result coding#1."
    )


async def test_custom_graphs_list_their_agent_calls_numbered_per_agent(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    for policy, graph in ((verify, "verify_loop.py"), (native, "native_tools.py")):
        with SimServer(policy, tool_call_parser="hermes") as srv:
            monkeypatch.setenv("MIROGRAPH_BASE_URL", srv.base_url)
            ref = f"{EXAMPLES / graph}:build_graph"
            outcome = await start_run("Q?", ref, run_id=graph, store_url=store)
        assert outcome.status == "completed", outcome.reason

    verified = await load_transcripts("verify_loop.py", store_url=store)
    labels = [(c.label, c.parent, c.depth, c.status) for c in verified.calls]
    assert labels == [
        ("planner#1", None, 1, "completed"),
        ("researcher#1", None, 1, "completed"),
        ("verifier#1", None, 1, "completed"),
        ("researcher#2", None, 1, "completed"),
        ("verifier#2", None, 1, "completed"),
    ]
    second = verified.calls[3]
    assert "Verifier feedback: REJECT" in (second.subtask or "")
    assert [m.type for m in second.messages].count("tool") == second.stats["tool_calls"] == 2
    assert verified.flow is None and verified.children(None) == verified.calls

    analysed = await load_transcripts("native_tools.py", store_url=store)
    assert [(c.label, c.protocol) for c in analysed.calls] == [
        ("analyst#1", "native"),
        ("writer#1", "mirothinker"),
    ]
    assert analysed.calls[0].messages[2].tool_calls[0]["name"] == "city_facts"
