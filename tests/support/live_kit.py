"""Runs that a test holds at chosen turns, to watch their events arrive (``flows.watch``).

``GatedPolicy`` is an in-process sim-model policy: turn ``n`` fetches page ``n``
(``support.many_tools:fetch``), the run answers after ``turns`` turns, and each turn
in ``hold`` announces itself (``reached[n]``) and waits for ``go[n]`` before its
model reply, so the test knows exactly which events exist while it is held.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

HOLD_S = 60.0
WAIT_S = 30.0


class GatedPolicy:
    def __init__(self, turns: int, hold: tuple[int, ...] = ()) -> None:
        self.turns = turns
        self.reached = {n: threading.Event() for n in hold}
        self.go = {n: threading.Event() for n in hold}

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        done = sum(1 for m in messages if m["role"] == "assistant")
        turn = done + 1
        if turn in self.reached and not self.reached[turn].is_set():
            self.reached[turn].set()
            assert self.go[turn].wait(HOLD_S), f"turn {turn} was never let go"
        if is_closing_request(messages[-1]["content"]) or done >= self.turns:
            return f"All pages read.</think>\n\nDone. \\boxed{{pages:{done}}}"
        call = render_call("many_tools", "fetch", {"topic": "watch", "page": turn})
        return f"Next is page {turn}.</think>\n\nReading.\n\n{call}"

    def release_all(self) -> None:
        for event in self.go.values():
            event.set()


def flow_spec(base_url: str, turns: int, tools: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": "pages",
        "models": {"m": {"base_url": base_url, "max_tokens": 512}},
        "agents": {
            "main": {
                "model": "m",
                "max_turns": turns + 2,
                "tools": tools or ["support.many_tools:fetch"],
            }
        },
        "entry": "main",
    }


async def reached(event: threading.Event) -> None:
    """Wait (off the loop) for a turn to be reached."""
    assert await asyncio.to_thread(event.wait, HOLD_S), "the run never reached that turn"


async def until(check: Callable[[], bool], what: str, *tasks: asyncio.Task[Any]) -> None:
    """Wait for ``check()`` to hold, up to ``WAIT_S`` seconds; a task of ``tasks``
    that ended meanwhile says why (its exception)."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        for task in tasks:
            if task.done():
                task.result()  # its exception, if it failed
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def tool_turns(events: list[dict[str, Any]]) -> list[int]:
    return [e["turn"] for e in events if e["event"] == "tool_call"]
