"""``mirograph show RUN_ID``: header, timeline with nested sub-agent calls, answer, usage."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from rich.console import Console
from support.testkit import Cli, write_team_flow
from support.transcript_kit import QUESTION, SECRET, TeamRun, killed_team_run, team_run

from mirograph.flows.transcript import AgentCall, RunTranscript
from mirograph.flows.views import show_view
from mirograph.state.schema import empty_stats


@pytest.fixture
async def run(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TeamRun:
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)
    return await team_run(tmp_path)


def position(lines: list[str], pattern: str, after: int = -1) -> int:
    """Index of the first line after ``after`` that matches ``pattern``."""
    for i in range(after + 1, len(lines)):
        if re.search(pattern, lines[i]):
            return i
    raise AssertionError(f"no line matching {pattern!r} after line {after}:\n" + "\n".join(lines))


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def test_show_of_a_completed_run_prints_the_timeline_with_nested_calls(
    run: TeamRun, cli: Cli
) -> None:
    shown = cli("show", run.run_id, "--store", run.store)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "\x1b[" not in out  # piped: plain text, no colour codes
    assert SECRET not in out
    lines = out.splitlines()
    assert lines[0] == "Run story — completed"
    assert re.search(rf"question\s+{re.escape(QUESTION)}", out)
    assert re.search(r"wall time\s+\d+\.\d\d s", out)

    at = position(lines, r"^TIMELINE$")
    planner = position(lines, r"^  planner \(entry\) — completed, answered, 3 turns", at)
    delegate = position(lines, r'\[1\] search_and_browse\(subtask="Sub-task for browsing:', planner)
    browsing = position(lines, r"browsing#1 — completed, answered, 4 turns", delegate)
    assert indent(lines[browsing]) > indent(lines[delegate]) > indent(lines[planner])
    fetch = position(lines, r'^\s+\[1\] fetch\(topic="browsing", step=1\)$', browsing)
    assert indent(lines[fetch]) > indent(lines[browsing])
    result = lines[fetch + 1].strip()
    assert result.startswith("→ browsing page 1 line 0: lorem ipsum dolor") and result.endswith("…")
    assert len(result) <= 82  # a one-line result, about 80 characters
    position(lines, r'\[3\] fetch\(topic="browsing", step=3\)', fetch)
    closing = position(lines, r"^\s+\[closing\] REPORT\[browsing:3\]$", fetch)
    report = position(lines, r"^\s+→ REPORT\[browsing:3\]$", closing)
    assert indent(lines[report]) < indent(lines[closing])  # back at the planner's call
    coding = position(lines, r'write_and_run_code\(subtask="Sub-task for coding:', report)
    position(lines, r"coding#1 — completed, answered, 2 turns", coding)
    reveal = position(lines, r"^    \[2\] reveal\(\)$", coding)
    assert lines[reveal + 1].strip() == "→ search key in use: ***"
    position(lines, r"^    \[3\] reply: I can answer now\.$", reveal)
    final = r"^    \[closing\] Final answer: \\boxed\{REPORT\[browsing:3\], REPORT\[coding:1\]\}$"
    position(lines, final, reveal)

    answer = position(lines, r"^ANSWER$")
    assert lines[answer + 1].strip() == run.answer
    usage = position(lines, r"^USAGE$", answer)
    planner_usage = run.usage("planner")
    row = lines[position(lines, r"^planner\s", usage)].split()
    prompt = sum(u["prompt_tokens"] for u in planner_usage)
    assert row[:5] == ["planner", "1", "3", str(len(planner_usage)), "3"]
    assert row[6] == f"{prompt:,}"
    position(lines, r"^browsing\s+1\s+4\s+5\s+3\s+0\s", usage)
    position(lines, r"^total\s+3\s", usage)
    events = Path(cli.home) / "runs" / "story" / "events.jsonl"
    trace = position(lines, r"^TRACE$", usage)
    assert "".join(line.strip() for line in lines[trace + 1 :]) == str(events)


def test_show_of_a_killed_run_shows_the_call_in_flight_as_running(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    killed_team_run(
        cli, sim_model("support.team_policy:team?browsing=9&coding=3"), tmp_path, "killed"
    )
    shown = cli("show", "killed", "--store", cli.store)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Run killed — paused"
    planner = position(lines, r"^  planner \(entry\) — running, 1 turn,")
    browsing = position(lines, r"browsing#1 — running, 3 turns", planner)
    step = position(lines, r'\[3\] lookup\(topic="browsing", step=3\)$', browsing)
    assert lines[step + 1].strip() == "→ (running: no result yet)"
    assert lines[step + 2].strip() == "… in flight when the run stopped"
    answer = position(lines, r"^ANSWER$", step)
    assert lines[answer + 1].strip() == "(none yet: the run is paused)"


def long_transcript(turns: int) -> RunTranscript:
    """One agent with ``turns`` replies, each calling ``probe`` once."""
    messages: list[BaseMessage] = [SystemMessage("system"), HumanMessage("task")]
    for n in range(1, turns + 1):
        call = {"name": "probe", "args": {"n": n}, "id": f"c{n}"}
        messages += [
            AIMessage(f"turn {n}", tool_calls=[call]),
            ToolMessage(f"r{n}", tool_call_id=f"c{n}"),
        ]
    stats = {**empty_stats(), "turns": turns, "tool_calls": turns, "model_calls": turns}
    call = AgentCall("main", "main", None, 0, None, "task", "completed", "max_turns", stats, "")
    call.messages = messages
    report = {
        "id": "long", "status": "completed", "flow": "f", "question": "Q", "answer": "A",
        "agents": {"main": stats}, "usage": stats, "wall_seconds": 1.5, "events": "",
    }  # fmt: skip
    return RunTranscript(report, [call])


def render(transcript: RunTranscript) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(show_view(transcript))
    return buffer.getvalue()


def test_a_long_agent_shows_its_first_and_last_turns() -> None:
    out = render(long_transcript(600))
    shown = [int(n) for n in re.findall(r"\[(\d+)\] probe\(n=\1\)", out)]
    assert shown == [*range(1, 16), *range(586, 601)]
    assert "… 570 turns …" in out
    assert "→ r600" in out and "→ r300" not in out
    assert len(out.splitlines()) < 100
    short = render(long_transcript(40))
    assert re.findall(r"\[(\d+)\] probe", short) == [str(n) for n in range(1, 41)]


def test_failed_and_malformed_calls_are_marked_as_errors() -> None:
    transcript = long_transcript(2)
    history = transcript.calls[0].messages
    history[3] = ToolMessage(
        "Tool call to probe on tools failed: TimeoutError", tool_call_id="c1", status="error"
    )
    malformed = {"name": "probe", "args": "{n: 3", "id": "c3", "error": "bad JSON"}
    history += [
        AIMessage("turn 3", invalid_tool_calls=[malformed]),
        ToolMessage(
            "Tool call to probe was malformed: bad JSON", tool_call_id="c3", status="error"
        ),
    ]
    lines = [line.strip() for line in render(transcript).splitlines()]
    first = lines.index("[1] probe(n=1)")
    assert lines[first + 1] == "✗ error: Tool call to probe on tools failed: TimeoutError"
    assert lines[lines.index("[2] probe(n=2)") + 1] == "→ r2"
    third = lines.index("[3] probe({n: 3)")
    assert lines[third + 1] == "✗ error: Tool call to probe was malformed: bad JSON"


def test_show_and_export_work_where_the_runs_tools_cannot_be_imported(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    """A run moved to another machine (or read from another venv) is still readable."""
    tools = tmp_path / "elsewhere"
    tools.mkdir()
    (tools / "moved_tools.py").write_text(
        "def lookup(topic: str, step: int) -> str:\n"
        '    """Look up one fact."""\n'
        '    return f"fact {topic} {step}"\n',
        encoding="utf-8",
    )
    flow = write_team_flow(
        tmp_path / "moved.yaml",
        sim_model("support.team_policy:team?browsing=2"),
        browsing="moved_tools:lookup",
        coding=None,
    )
    done = cli("run", "Compare.", "--flow", str(flow), "--id", "moved", "--store", cli.store,
               env={"PYTHONPATH": str(tools)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = cli("show", "moved", "--store", cli.store, env={"COLUMNS": "120"})
    assert shown.returncode == 0, shown.stderr
    assert 'lookup(topic="browsing", step=2)' in shown.stdout and "fact browsing 2" in shown.stdout
    exported = cli("export", "moved", "--store", cli.store)
    assert exported.returncode == 0, exported.stderr
    assert "fact browsing 1" in exported.stdout
    resumed = cli("resume", "moved", "--store", cli.store)  # completed: nothing to import
    assert resumed.returncode == 0


async def test_show_of_a_postgresql_run_finds_its_events_in_the_store(
    home: Path, postgres_server
) -> None:
    # Its events are in a table, not a file: asked of the store, not the file system.
    import psycopg

    from mirograph.flows.runner import start_run
    from mirograph.flows.views import render_show

    url = postgres_server.url
    await start_run("Note things.", "support.noting_graph:build_graph", run_id="n", store_url=url)

    async def trace() -> str:
        console = Console(file=io.StringIO(), width=300)
        console.print(await render_show("n", store_url=url))
        out = console.file.getvalue()  # type: ignore[attr-defined]
        return out[out.index("TRACE") :]

    shown = await trace()
    assert "mirograph_events" in shown and "(no events recorded)" not in shown
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM mirograph_events WHERE run_id = 'n'")
    assert "(no events recorded)" in await trace()
