"""Restarted runs in ``show``, ``show --json``, the transcript and ``export``.

A planner with ``max_restarts: 2`` and ``max_turns: 2`` delegates to a browsing
sub-agent in each turn and closes without a box in its first two attempts; the
third answers. All attempts stay in the planner's one history: ``show --json``
lists one row per attempt, ``show`` numbers turns within their attempt with a
separator where each begins, ``export`` says each message's attempt and phase,
and MiroFlow's log holds the last attempt as the main history.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from rich.console import Console
from support.team_policy import TOOL
from support.testkit import Cli, show

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import (
    FAILURE_SUMMARY_PREFIX,
    FAILURE_SUMMARY_REQUEST,
    is_closing_request,
    restart_question,
    task_message,
)
from mirograph.agents.sim.server import SimServer
from mirograph.flows.export import export_run
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run
from mirograph.flows.transcript import (
    AgentCall,
    RunTranscript,
    attempt_slices,
    closing_indices,
    load_transcripts,
    message_turns,
    summary_indices,
    turns_of,
)
from mirograph.flows.views import show_view
from mirograph.state.schema import empty_stats

QUESTION = "Which is older, alpha or beta?"
NO_BOX = "Nothing found.</think>\n\nI could not find it."


def summary_text(attempt: int) -> str:
    return f"Failure type: incomplete\nWhat happened: attempt {attempt} ran out of turns."


class Restarting:
    """The planner fails ``failing`` attempts (it delegates in every turn until its
    turns run out), summarises each when asked, and in the next attempt delegates
    once and answers. Browsing looks up once and reports. Requests come one at a
    time: an attempt begins with the planner's request that has no reply yet."""

    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.attempt = 0

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        system = messages[0]["content"]
        done = sum(1 for m in messages if m["role"] == "assistant")
        servers = TOOL.findall(system)
        if "You are the main agent" not in system:
            if is_closing_request(messages[-1]["content"]):
                task = messages[1]["content"].split("\n", 1)[0]
                return f"Summing up.</think>\n\nREPORT[{task}]"
            if done == 0:
                server, tool = servers[0]
                call = render_call(server, tool, {"topic": "browsing", "step": 1})
                return f"Looking it up.</think>\n\nWorking.\n\n{call}"
            return "I have it.</think>\n\nbrowsing is done."
        if body.get("continue_final_message"):
            return summary_text(self.attempt)
        if done == 0:
            self.attempt += 1
        attempt = self.attempt
        if is_closing_request(messages[-1]["content"]):
            return NO_BOX if attempt <= self.failing else "Done.</think>\n\n\\boxed{alpha}"
        if attempt <= self.failing or done == 0:
            server, tool = next((s, t) for s, t in servers if s == "agent-browsing")
            subtask = f"Sub-task for browsing: attempt {attempt} turn {done + 1}"
            call = render_call(server, tool, {"subtask": subtask})
            return f"Delegating.</think>\n\nAsking browsing.\n\n{call}"
        return "The report is back.</think>\n\nI can answer now."


async def restarted_run(cli: Cli, run_id: str, failing: int, *, summary: bool = True) -> None:
    with SimServer(Restarting(failing)) as srv:
        flow = validate_flow(
            {
                "name": "restarts",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 512}},
                "agents": {
                    "planner": {
                        "model": "m",
                        "role": "main",
                        "sub_agents": ["browsing"],
                        "max_turns": 2,
                        "max_restarts": 2,
                        "restart_summary": summary,
                    },
                    "browsing": {
                        "model": "m",
                        "max_turns": 3,
                        "tools": ["support.team_tools:lookup"],
                    },
                },
                "entry": "planner",
            }
        )
        outcome = await start_run(QUESTION, flow, run_id=run_id, store_url=cli.store)
    assert outcome.status == "completed", outcome.reason
    assert outcome.answer == "alpha"


def position(lines: list[str], pattern: str, after: int = -1) -> int:
    for i in range(after + 1, len(lines)):
        if re.search(pattern, lines[i]):
            return i
    raise AssertionError(f"no line matching {pattern!r} after line {after}:\n" + "\n".join(lines))


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


ROWS = [
    {"attempt": 1, "turns": 2, "stop_reason": "max_turns", "summary": summary_text(1)},
    {"attempt": 2, "turns": 2, "stop_reason": "max_turns", "summary": summary_text(2)},
    {"attempt": 3, "turns": 2, "stop_reason": "answered", "summary": None},
]


@pytest.fixture
async def three(cli: Cli) -> str:
    """Two failed attempts, then one that answers."""
    await restarted_run(cli, "three", failing=2)
    return "three"


def test_show_json_lists_every_attempt(three: str, cli: Cli) -> None:
    report = show(cli, three)
    assert report["attempts"] == ROWS
    assert report["agents"]["planner"]["turns"] == 6  # the counters add up over attempts
    assert report["stop_reason"] == "answered"
    assert [row["subtask"] for row in report["invocations"]] == [
        f"Sub-task for browsing: attempt {a} turn {t}" for a, t in [(1, 1), (1, 2), (2, 1), (2, 2)]
    ] + ["Sub-task for browsing: attempt 3 turn 1"]


def test_show_numbers_turns_within_attempts_with_a_separator_where_each_begins(
    three: str, cli: Cli
) -> None:
    shown = cli("show", three, "--store", cli.store)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    row = position(lines, r"^\s+attempts\s")
    wrapped = lines[row : position(lines, r"^\s+wall time\s", row)]  # at the terminal's width
    assert " ".join(" ".join(wrapped).split()[1:]) == (
        "3 — 1: max_turns after 2 turns; 2: max_turns after 2 turns; 3: answered"
    )
    at = position(lines, r"^TIMELINE$")
    planner = position(lines, r"^  planner \(entry\) — completed, answered, 6 turns", at)
    here = planner
    for attempt in (1, 2, 3):
        if attempt > 1:
            here = position(lines, rf"^    — attempt {attempt} \(after max_turns\) —$", here)
        first = position(
            lines, rf'^    \[1\] search_and_browse\(subtask=".+attempt {attempt} turn 1"\)$', here
        )
        assert not any("— attempt" in line for line in lines[here + 1 : first])
        # The call its first turn made hangs under it, numbered in call order.
        label = {1: 1, 2: 3, 3: 5}[attempt]
        position(lines, rf"^          browsing#{label} — completed, answered, 2 turns", first)
        if attempt < 3:
            second = position(lines, r'^    \[2\] search_and_browse\(subtask=".+turn 2"\)$', first)
            # Its turns ran out: no closing request (an answer would be a guess).
            summary = position(lines, r"^    \[summary\] Failure type: incomplete What", second)
            assert not any(line.startswith("    [closing]") for line in lines[second:summary])
            assert f"attempt {attempt} ran out" in lines[summary]
            here = summary
        else:
            answer = position(lines, r"^    \[2\] reply: I can answer now\.$", first)
            position(lines, r"^    \[closing\] \\boxed\{alpha\}$", answer)
    assert sum("— attempt" in line for line in lines) == 2
    assert not any(re.search(r"\[[3-9]\] ", line) for line in lines)  # at most 2 per attempt


async def test_the_transcript_knows_attempts_and_keeps_children_under_their_turns(
    three: str, cli: Cli
) -> None:
    transcript = await load_transcripts(three, store_url=cli.store)
    planner = transcript.calls[0]
    turns = turns_of(planner.messages)
    assert [(t.attempt, t.in_attempt, t.closing, t.summary) for t in turns] == [
        (1, 1, False, False),
        (1, 2, False, False),
        (1, 3, False, True),
        (2, 1, False, False),
        (2, 2, False, False),
        (2, 3, False, True),
        (3, 1, False, False),
        (3, 2, False, False),
        (3, 3, True, False),
    ]
    assert [t.number for t in turns] == list(range(1, 10))
    # Each sub-agent call is placed on the reply that made it (numbered over the history).
    placed = {c.label: c.parent_turn for c in transcript.calls[1:]}
    assert placed == {f"browsing#{k}": n for k, n in zip(range(1, 6), (1, 2, 4, 5, 7), strict=True)}
    for call in transcript.calls[1:]:
        reply = turns[call.parent_turn - 1].reply
        assert reply.tool_calls[0]["id"] == call.call_id
    summaries = sorted(summary_indices(planner.messages))
    assert [planner.messages[i].text for i in summaries[::2]] == [FAILURE_SUMMARY_REQUEST] * 2
    assert all(planner.messages[i].text.startswith(FAILURE_SUMMARY_PREFIX) for i in summaries[1::2])


async def test_export_jsonl_says_each_messages_attempt_and_phase(three: str, cli: Cli) -> None:
    records = lines_of(await export_run(three, "jsonl", store_url=cli.store))
    assert records[0]["attempts"] == ROWS
    planner = [r for r in records if r["type"] == "message" and r["agent"] == "planner"]
    starts = [r for r in planner if r["role"] == "system"]
    assert [(r["attempt"], r["turn"]) for r in starts] == [(1, 0), (2, 0), (3, 0)]
    for attempt in (1, 2, 3):
        own = [r for r in planner if r["attempt"] == attempt]
        assert own[0]["role"] == "system" and own[1]["role"] == "user"
        close = [r["role"] for r in own if r.get("phase") == "close"]
        summary = [r for r in own if r.get("phase") == "summary"]
        if attempt < 3:  # its turns ran out: summarised without a closing request
            assert close == []
            assert [(r["role"], r["turn"]) for r in summary] == [("user", 3), ("assistant", 3)]
            assert summary[0]["content"] == FAILURE_SUMMARY_REQUEST
        else:
            assert close == ["user", "assistant"]
            assert [r["turn"] for r in own if r.get("phase") == "close"] == [3, 3]
            assert summary == []
        assert max(r["turn"] for r in own) == 3
    agents = {r["label"]: r for r in records if r["type"] == "agent"}
    assert [(agents[f"browsing#{k}"]["parent_attempt"], agents[f"browsing#{k}"]["parent_turn"])
            for k in range(1, 6)] == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)]  # fmt: skip
    browsing = [r for r in records if r["type"] == "message" and r["agent"] == "browsing#3"]
    assert {r["attempt"] for r in browsing} == {1}


async def test_miroflow_main_history_is_the_last_attempt(three: str, cli: Cli) -> None:
    log = json.loads(await export_run(three, "miroflow", store_url=cli.store))
    history = log["main_agent_message_history"]["message_history"]
    task3 = task_message(restart_question(QUESTION, [summary_text(1), summary_text(2)]))
    assert history[0] == {"role": "user", "content": [{"type": "text", "text": task3}]}
    assert [m["role"] for m in history] == ["user", "assistant"] * 3
    text = json.dumps(history)
    assert "attempt 3 turn 1" in text and "attempt 2 turn" not in text
    assert "You are the main agent" in log["main_agent_message_history"]["system_prompt"]
    assert log["current_main_turn_id"] == 2
    trace = log["trace_data"]
    assert trace["failure_experience_summary"] == summary_text(2)
    assert [{k: row[k] for k in ROWS[0]} for row in trace["attempts"]] == ROWS
    earlier = [row["main_agent_message_history"] for row in trace["attempts"][:2]]
    assert "main_agent_message_history" not in trace["attempts"][2]
    for attempt, old in enumerate(earlier, 1):
        first = old["message_history"][0]["content"][0]["text"]
        assert first == task_message(
            restart_question(QUESTION, [summary_text(n) for n in range(1, attempt)])
        )
        said = [m["content"][0]["text"] for m in old["message_history"]]
        assert said[-2] == FAILURE_SUMMARY_REQUEST
        assert said[-1].startswith(FAILURE_SUMMARY_PREFIX)
    assert len(log["sub_agent_message_history_sessions"]) == 5
    names = [step["step_name"] for step in log["step_logs"]]
    assert names.count("Main Agent | Restart") == 2
    assert names.count("Main Agent | Failure Summary | LLM Call") == 2
    assert names.count("Main Agent | Final Summary | LLM Call") == 1


async def test_restarts_without_summaries_show_no_summary_exchange(cli: Cli) -> None:
    await restarted_run(cli, "bare", failing=1, summary=False)
    report = show(cli, "bare")
    assert report["attempts"] == [
        {"attempt": 1, "turns": 2, "stop_reason": "max_turns", "summary": None},
        {"attempt": 2, "turns": 2, "stop_reason": "answered", "summary": None},
    ]
    records = lines_of(await export_run("bare", "jsonl", store_url=cli.store))
    planner = [r for r in records if r["type"] == "message" and r["agent"] == "planner"]
    assert not any(r.get("phase") == "summary" for r in planner)
    assert [r["attempt"] for r in planner if r["role"] == "system"] == [1, 2]
    log = json.loads(await export_run("bare", "miroflow", store_url=cli.store))
    assert "failure_experience_summary" not in log["trace_data"]
    first = log["main_agent_message_history"]["message_history"][0]["content"][0]["text"]
    assert first == task_message(QUESTION)  # 1.7 restarts on the bare task
    shown = cli("show", "bare", "--store", cli.store).stdout
    assert "— attempt 2 (after max_turns) —" in shown and "[summary]" not in shown


async def test_a_run_that_never_restarted_has_one_attempt_and_reads_as_before(cli: Cli) -> None:
    await restarted_run(cli, "once", failing=0)
    report = show(cli, "once")
    assert report["attempts"] == [
        {"attempt": 1, "turns": 2, "stop_reason": "answered", "summary": None}
    ]
    shown = cli("show", "once", "--store", cli.store).stdout
    assert "attempts" not in shown and "— attempt" not in shown
    records = lines_of(await export_run("once", "jsonl", store_url=cli.store))
    messages = [r for r in records if r["type"] == "message"]
    assert {r["attempt"] for r in messages} == {1}
    assert {r.get("phase") for r in messages} == {None, "close"}
    log = json.loads(await export_run("once", "miroflow", store_url=cli.store))
    assert log["trace_data"] == {}
    assert log["main_agent_message_history"]["message_history"][0]["content"][0]["text"] == (
        task_message(QUESTION)
    )


def two_attempts(*, summary: bool) -> list[BaseMessage]:
    call = {"name": "f", "args": {}, "id": "c1"}
    first: list[BaseMessage] = [
        SystemMessage("s"),
        HumanMessage("task"),
        AIMessage("a", tool_calls=[call]),
        ToolMessage("r", tool_call_id="c1"),
        HumanMessage("closing request"),
        AIMessage("no box"),
    ]
    if summary:
        first += [HumanMessage(FAILURE_SUMMARY_REQUEST), AIMessage("<think>\nsummary")]
    return [*first, SystemMessage("s"), HumanMessage("task 2"), AIMessage("b")]


@pytest.mark.parametrize("summary", [True, False])
def test_a_system_prompt_after_a_task_begins_the_next_attempt(summary: bool) -> None:
    history = two_attempts(summary=summary)
    extra = [3, 3] if summary else []
    assert message_turns(history) == [0, 0, 1, 1, 2, 2, *extra, 0, 0, 1]
    assert closing_indices(history) == {4, 5}
    assert summary_indices(history) == ({6, 7} if summary else set())
    turns = turns_of(history)
    assert [(t.number, t.attempt, t.in_attempt) for t in turns] == [
        (1, 1, 1),
        (2, 1, 2),
        *([(3, 1, 3)] if summary else []),
        (len(turns), 2, 1),
    ]
    assert [len(part) for part in attempt_slices(history)] == [8 if summary else 6, 3]


def test_show_says_an_attempt_in_progress_is_running() -> None:
    history = two_attempts(summary=True)[:-1]  # attempt 2 has no reply yet
    stats = {**empty_stats(), "turns": 2}
    call = AgentCall("main", "main", None, 0, None, "task", "running", None, stats, "")
    call.messages = history
    report = {
        "id": "r", "status": "paused", "flow": "f", "question": "Q", "answer": None,
        "agents": {"main": stats}, "usage": stats, "invocations": [], "warnings": [],
        "attempts": [
            {"attempt": 1, "turns": 2, "stop_reason": "max_turns", "summary": "summary"},
            {"attempt": 2, "turns": 0, "stop_reason": None, "summary": None},
        ],
    }  # fmt: skip
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(show_view(RunTranscript(report, [call])))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert re.search(r"attempts\s+2 — 1: max_turns after 2 turns; 2: running$", lines[3].rstrip())
    separator = position(lines, r"^    — attempt 2 \(after max_turns\) —$")
    assert lines[separator + 1].strip() == "(no reply yet)"
    position(lines, r"^    \[summary\] summary$")
