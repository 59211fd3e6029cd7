"""The team policy (``support.team_policy``), with model replies a test holds.

``GatedTeam(hold={"browsing": (2, 3)}, browsing=4)`` answers as ``team`` does,
but the model call that makes browsing's 2nd reply first announces itself
(``reached[("browsing", 2)]``) and waits for ``go[("browsing", 2)]``: while it
is held, the test knows exactly which turns the store has, and letting it go
makes exactly one new turn. In-process only (a ``SimServer`` of the test's).
"""

from __future__ import annotations

import threading
from typing import Any

from support.team_policy import SUBTASK, team

HOLD_S = 120.0


class GatedTeam:
    def __init__(self, hold: dict[str, tuple[int, ...]], **turns: int) -> None:
        self.turns = turns
        keys = [(agent, n) for agent, numbers in hold.items() for n in numbers]
        self.reached = {key: threading.Event() for key in keys}
        self.go = {key: threading.Event() for key in keys}

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        key = (_agent(messages), 1 + sum(1 for m in messages if m["role"] == "assistant"))
        if key in self.reached and not self.reached[key].is_set():
            self.reached[key].set()
            assert self.go[key].wait(HOLD_S), f"{key} was never let go"
        return team(body, **self.turns)

    def wait(self, agent: str, turn: int, timeout: float = 60.0) -> None:
        """Until that model call is being held."""
        assert self.reached[(agent, turn)].wait(timeout), f"{agent} never reached turn {turn}"

    def release_all(self) -> None:
        for event in self.go.values():
            event.set()


def _agent(messages: list[dict[str, Any]]) -> str:
    if "You are the main agent" in messages[0]["content"]:
        return "planner"
    match = SUBTASK.match(messages[1]["content"])
    return match.group("agent") if match else "unknown"
