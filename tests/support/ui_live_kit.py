"""Runs for the web view's live review (``tests/flows/ui/test_live_review.py``).

``endless_flow`` is a single agent that reads page after page (``many_tools:fetch``)
and never answers within a test's time: a run whose events keep coming while a test
looks at it (the test stops it). ``RollbackThenRestart`` makes an agent whose first
attempt has a turn rolled back and whose second attempt has that turn again without
one, so a note that belongs to one attempt can be seen on the other.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

from .live_kit import GatedPolicy, flow_spec
from .testkit import Cli


def endless_flow(path: Path, base_url: str) -> tuple[Path, GatedPolicy]:
    """A flow file whose run fetches pages for ~9,000 turns, and its policy."""
    path.write_text(yaml.safe_dump(flow_spec(base_url, 9_000)))
    return path, GatedPolicy(9_000)


class RollbackThenRestart:
    """Attempt 1: turn 1 looks up, turn 2 calls a broken tool (rolled back once, then
    kept), the turns run out and the closing reply has no box; a failure summary is
    asked. Attempt 2: turn 1 looks up, turn 2 has what it needs, the closing reply
    boxes the answer. Requests come one at a time (one agent)."""

    def __init__(self) -> None:
        self.attempt = 0

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        done = sum(1 for m in messages if m["role"] == "assistant")
        if body.get("continue_final_message"):
            return f"Failure type: incomplete\nWhat happened: attempt {self.attempt} stalled."
        if done == 0:
            self.attempt += 1
        if is_closing_request(messages[-1]["content"]):
            if self.attempt == 1:
                return "Nothing found.</think>\n\nI could not find it."
            return "Done.</think>\n\n\\boxed{alpha}"
        if done == 0:
            call = render_call("lab", "lookup", {"topic": f"attempt{self.attempt}", "step": 1})
            return f"Looking.</think>\n\nLooking it up.\n\n{call}"
        if self.attempt == 1:
            call = render_call("lab", "broken", {"topic": "alpha", "step": 2})
            return f"Computing.</think>\n\nComputing.\n\n{call}"
        return "I have it.</think>\n\nThe answer is ready."


def restart_flow(base_url: str) -> dict[str, Any]:
    """One agent with 2 turns an attempt, one restart and one rollback allowed."""
    return {
        "name": "restarts",
        "models": {"m": {"base_url": base_url, "max_tokens": 512, "max_retries": 0}},
        "agents": {
            "main": {
                "model": "m",
                "max_turns": 2,
                "max_restarts": 1,
                "max_rollbacks": 1,
                "tools": ["support.team_tools:lookup", "support.ui_kit:broken"],
            }
        },
        "entry": "main",
    }


#: Seconds a held tool call waits to be let go.
HOLD_S = 60.0


def held_read(topic: str, page: int) -> str:
    """Read page `page` about `topic`."""
    gate = Path(os.environ["UI_GATE"])
    (gate / "holding").write_text(f"{topic} {page}\n")
    deadline = time.monotonic() + HOLD_S
    while not (gate / "go").exists():  # the test creates it; a tool has no other channel
        assert time.monotonic() < deadline, "the held tool call was never let go"
        time.sleep(0.01)
    return f"Page {page} of {topic}: alpha is older than beta."


class HeldAfterRead:
    """Turn 1 reads a page (``held_read``, held by the test); turn 2's model request
    announces itself (``second``) and waits for ``go`` before its reply."""

    def __init__(self) -> None:
        self.second = threading.Event()
        self.go = threading.Event()

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        done = sum(1 for m in messages if m["role"] == "assistant")
        if done == 0:
            call = render_call("ui_live_kit", "held_read", {"topic": "alpha", "page": 1})
            return f"Reading.</think>\n\nReading page 1.\n\n{call}"
        if not self.second.is_set():
            self.second.set()
            assert self.go.wait(HOLD_S), "turn 2 was never let go"
        return "Done.</think>\n\n\\boxed{alpha}"


def held_flow(path: Path, base_url: str) -> Path:
    spec = {
        "name": "held",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {"main": {"model": "m", "tools": ["support.ui_live_kit:held_read"]}},
        "entry": "main",
    }
    path.write_text(yaml.safe_dump(spec))
    return path


OPENED = re.compile(r"mirograph ui: open (http://\S+)")


def start_ui(cli: Cli, port: int) -> tuple[subprocess.Popen[str], str]:
    """``mirograph ui`` on ``port`` (its token generated, so new at each start) and the
    address it printed."""
    proc = cli.popen("ui", "--port", str(port), "--store", cli.store)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = OPENED.search(line)
    assert match, f"mirograph ui did not start: {line!r}"
    return proc, match.group(1)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def chromium() -> str:
    found = os.environ.get("MIROGRAPH_CHROMIUM") or shutil.which("chromium")
    assert found, "chromium is not installed: run .ci/install-system-deps"
    return found
