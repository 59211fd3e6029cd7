"""Live progress: a panel on a terminal, nothing extra when not a terminal,
JSON events with ``--json``."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

from rich.console import Console
from support.testkit import Cli, read_until_closed, write_team_flow

from mirograph.flows.progress import RunProgress
from mirograph.graphs.run_control import RunControl

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def events() -> list[dict]:
    b, c = "agent_browsing:1", "agent_coding:2"
    return [
        {"event": "model_call", "agent": "planner", "ns": "", "turn": 1, "max_turns": 600,
         "outcome": "ok", "prompt_tokens": 700, "completion_tokens": 100, "cached_tokens": 0},
        {"event": "agent_started", "agent": "browsing", "ns": b, "subtask": "find alpha"},
        {"event": "agent_started", "agent": "coding", "ns": c, "subtask": "compute beta"},
        {"event": "model_call", "agent": "browsing", "ns": b, "turn": 1, "max_turns": 50,
         "outcome": "ok", "prompt_tokens": 500, "completion_tokens": 40, "cached_tokens": 320},
        {"event": "tool_call", "agent": "browsing", "ns": b, "turn": 1, "tool": "google_search",
         "args": '{"q": "alpha"}', "outcome": "ok", "latency_ms": 412.0, "result": "3 hits"},
        {"event": "model_call", "agent": "browsing", "ns": b, "turn": 2, "max_turns": 50,
         "outcome": "rollback", "detail": "repeated query", "prompt_tokens": 10,
         "completion_tokens": 1, "cached_tokens": 0},
        {"event": "agent_started", "agent": "helper", "ns": f"{b}|agent_helper:3", "subtask": "x"},
        {"event": "agent_finished", "agent": "coding", "ns": c, "status": "completed",
         "stop_reason": "answered", "turns": 2, "latency_ms": 1500.0},
    ]  # fmt: skip


def test_the_panel_shows_each_agent_at_work_with_its_path_turn_and_last_tool() -> None:
    console = Console(record=True, width=160, force_terminal=False)
    control = RunControl()
    control.begin("r1")
    progress = RunProgress(control, console)
    for event in events():
        progress(event)
    lines = console.export_text()
    # Agent calls, tool calls and unusual model calls scroll by as lines.
    assert "▶ planner › browsing#1  find alpha" in lines
    assert 'planner › browsing#1  t1  google_search({"q": "alpha"}) ✓ 0.4s → 3 hits' in lines
    assert "↺ planner › browsing#1  t2 rollback: repeated query" in lines
    assert "▶ planner › browsing#1 › helper#1  x" in lines
    assert "■ planner › coding#1  completed (answered), 2 turns, 1s" in lines
    console.print(progress)
    panel = console.export_text()
    # 1 tool call and 3 sub-agent calls, counted as their parents' tool calls (as stats do)
    assert "r1" in panel and "3 model calls · 4 tool calls" in panel
    assert re.search(r"planner\s+turn 1/600", panel)
    assert re.search(r'planner › browsing#1\s+turn 2/50\s+google_search\(\{"q": "alpha"\}\)', panel)
    assert re.search(r"planner › browsing#1 › helper#1\s+starting", panel)
    assert "coding#1" not in panel  # finished calls leave the panel
    assert "Ctrl-C pauses after the current step" in panel
    control.request_pause("paused by Ctrl-C")
    console.print(progress)
    assert "pausing after the current step (paused by Ctrl-C)" in console.export_text()


def test_on_a_terminal_run_draws_progress_and_off_it_stays_quiet(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    flow = write_team_flow(
        tmp_path / "team.yaml",
        sim_model("support.team_policy:team?browsing=3", "--latency-ms", "50"),
        coding=None,
    )
    quiet = cli("run", "Compare.", "--flow", str(flow), "--id", "quiet", "--store", cli.store)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # off a terminal: the answer on stdout and nothing else
    assert quiet.stdout == "REPORT[browsing:3]\n"

    master, slave = pty.openpty()  # stderr is a terminal: the live panel is drawn there
    proc = subprocess.Popen(
        cli.argv("run", "Compare.", "--flow", str(flow), "--id", "tty", "--store", cli.store),
        env=cli.environ({"COLUMNS": "140"}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    drawn = read_until_closed(master)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert stdout == "REPORT[browsing:3]\n"
    screen = ANSI.sub("", drawn.decode())
    assert "▶ planner › browsing#1  Sub-task for browsing: Compare." in screen
    assert 'planner › browsing#1  t3  lookup({"topic": "browsing", "step": 3}) ✓' in screen
    assert re.search(r"planner › browsing#1\s+turn [1-3]/20", screen)
    assert "Ctrl-C pauses after the current step · twice stops at once" in screen
    assert "tokens" in screen and "model calls" in screen
    assert "run tty completed" in screen


def test_a_resumed_run_keeps_its_counts_and_the_labels_of_calls_in_flight() -> None:
    console = Console(record=True, width=160, force_terminal=False)
    control = RunControl()
    control.begin("r2", tokens_before=9000)
    progress = RunProgress(control, console)
    done = {"agent": "browsing", "status": "completed", "turns": 2, "checkpoint_ns": "b:1"}
    going = {"agent": "browsing", "status": "running", "turns": 3, "checkpoint_ns": "b:2"}
    usage = {"model_calls": 7, "tool_calls": 5, "cached_tokens": 4000}
    progress({"event": "run_resumed", "entry": "planner", "usage": usage, "calls": [done, going]})
    progress({"event": "agent_started", "agent": "browsing", "ns": "b:2"})
    progress({"event": "agent_started", "agent": "browsing", "ns": "b:3"})
    console.print(progress)
    text = console.export_text()
    assert "▶ planner › browsing#2" in text and "▶ planner › browsing#3" in text
    # 5 before the pause, and the new call to browsing#3
    assert "9,000 tokens (4,000 cached) · 7 model calls · 6 tool calls" in text
    assert re.search(r"planner › browsing#2\s+turn 3\b", text)
    assert "browsing#1" not in text  # finished before the pause


def test_a_restart_is_a_line_and_the_panel_counts_turns_within_the_attempt() -> None:
    console = Console(record=True, width=160, force_terminal=False)
    control = RunControl()
    control.begin("r2")
    progress = RunProgress(control, console)
    for turn in (1, 2):
        progress({"event": "model_call", "agent": "main", "ns": "", "turn": turn,
                  "max_turns": 2, "outcome": "ok"})  # fmt: skip
    progress({"event": "restarted", "agent": "main", "ns": "", "attempt": 2,
              "after": "max_turns", "turns": 2, "summary_chars": 80})  # fmt: skip
    progress({"event": "model_call", "agent": "main", "ns": "", "turn": 1, "max_turns": 2,
              "outcome": "ok"})  # fmt: skip
    lines = console.export_text()
    assert "↻ main  attempt 2: the last ended with no boxed answer (max_turns, 2 turns)" in lines
    console.print(progress)
    assert re.search(r"main\s+turn 1/2 · attempt 2", console.export_text())
