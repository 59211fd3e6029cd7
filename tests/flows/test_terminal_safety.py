"""Escape sequences a model, a tool or a question carries never reach the terminal.

A run whose question, flow name, model replies and tool result hold a window
title sequence, a screen clear, a one-byte C1 CSI and a bidi override goes
through ``run`` (off a terminal and on one, with its live progress), ``show``
and ``ls``: no ESC, BEL, C1 or bidi character comes out, the text is still
there as visible escapes, and the JSON outputs keep the exact values.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import yaml
from support.hostile_text import CLEAR, HOSTILE, STRAY, TITLE
from support.testkit import Cli, read_until_closed

from mirograph.flows.terminal import printable

QUESTION = f"What does the tool say?{TITLE}{CLEAR}\nSecond line\ttabbed"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def hostile_flow(path: Path, base_url: str) -> Path:
    flow = {
        "name": "hostile",
        "description": f"a flow{CLEAR}",
        "models": {"m": {"base_url": base_url, "max_tokens": 512, "max_retries": 0}},
        "agents": {"main": {"model": "m", "max_turns": 5, "tools": ["support.hostile_text:shout"]}},
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return path


def assert_safe(text: str) -> None:
    found = [c for c in RAW if c in text]
    assert not found, f"raw control characters {found!r} in: {text[:400]!r}"


def test_run_show_and_ls_neutralise_escapes_and_json_keeps_them(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    flow = hostile_flow(tmp_path / "flow.yaml", sim_model("support.hostile_text:reply"))
    ran = cli("run", QUESTION, "--flow", str(flow), "--id", "hostile", "--store", cli.store)
    assert ran.returncode == 0, ran.stderr
    assert_safe(ran.stdout + ran.stderr)
    assert ran.stdout == printable(f"forty{HOSTILE}two") + "\n"
    assert "\\x1b]0;pwned\\x07" in ran.stdout  # shown, not lost

    shown = cli("show", "hostile", "--store", cli.store, env={"COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert_safe(shown.stdout + shown.stderr)
    assert "What does the tool say?\\x1b]0;pwned\\x07\\x1b[2J" in shown.stdout
    assert re.search(r"^ +Second line +tabbed", shown.stdout, re.M)  # its lines and tab kept
    assert "\\x1b]0;pwned\\x07HELLO\\x1b[2J\\x1b[2J\\x1b[31mred\\x9b31m result" in shown.stdout

    listed = cli("ls", "--store", cli.store)
    assert listed.returncode == 0, listed.stderr
    assert_safe(listed.stdout + listed.stderr)
    assert "What does the tool say?\\x1b]0;pwned" in listed.stdout

    report = json.loads(cli("show", "hostile", "--store", cli.store, "--json").stdout)
    assert (report["question"], report["answer"]) == (QUESTION, f"forty{HOSTILE}two")
    rows = json.loads(cli("ls", "--store", cli.store, "--json").stdout)
    assert rows[0]["question"] == QUESTION


def test_live_progress_on_a_terminal_shows_escapes_as_text(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    flow = hostile_flow(tmp_path / "flow.yaml", sim_model("support.hostile_text:reply"))
    master, slave = pty.openpty()  # stdout and stderr are a terminal: progress is drawn
    proc = subprocess.Popen(
        cli.argv("run", QUESTION, "--flow", str(flow), "--id", "tty", "--store", cli.store),
        env=cli.environ({"COLUMNS": "300"}),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    drawn = read_until_closed(master)
    assert proc.wait(timeout=60) == 0
    screen = drawn.decode(errors="replace")
    # Rich draws its own styles and cursor moves; none of the run's sequences get through.
    for sequence in ("\x1b]0;pwned", "\x1b[2J", "\x07", "\x9b", "\u202e", "\x1b[31mred"):
        assert sequence not in screen, sequence
    assert "shout" in screen and "\\x1b]0;pwned\\x07HELLO" in screen  # the tool-call line
    assert "run tty completed" in screen


def test_printable_shows_every_control_character_and_keeps_the_rest() -> None:
    text = "a\tb\nc\rd\x00e\x7ff\x85g\u202eh\u2067i é 漢 ✓"
    assert printable(text) == "a\tb\nc\\x0dd\\x00e\\x7ff\\x85g\\u202eh\\u2067i é 漢 ✓"
    assert printable("a\tb\nc", multiline=False) == "a\\x09b\\x0ac"


def test_what_a_tool_prints_stays_out_of_the_answer_and_the_json(
    cli: Cli, sim_model, tmp_path: Path
) -> None:
    flow = hostile_flow(tmp_path / "flow.yaml", sim_model("support.hostile_text:reply"))
    ran = cli("run", "Q?", "--flow", str(flow), "--id", "stray", "--store", cli.store, "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["answer"] == f"forty{HOSTILE}two"
    assert STRAY not in ran.stdout + ran.stderr
    logged = (cli.home / "tool-output.log").read_text(encoding="utf-8")
    assert f"{STRAY} via print" in logged and f"{STRAY} via the descriptor" in logged
