"""Team tools that can hold a call until the test lets it go.

Like ``team_tools`` (each call is logged to ``$TEAM_LOG``), but the call whose
``<topic>:<step>`` equals ``$PAUSE_BLOCK_AT`` announces itself on the FIFO
``$PAUSE_FIFO`` and then waits until the test writes to the FIFO
``$PAUSE_GO``: the test can pause or interrupt the runner while a step is in
flight, then let that step finish.
"""

from __future__ import annotations

import os

from .team_tools import _record


def lookup(topic: str, step: int) -> str:
    """Look up one fact about `topic` (step `step` of the search)."""
    _hold(topic, step)
    return _record("lookup", topic, step)


def compute(topic: str, step: int) -> str:
    """Compute one intermediate result for `topic` (step `step` of the work)."""
    _hold(topic, step)
    return _record("compute", topic, step)


def _hold(topic: str, step: int) -> None:
    if f"{topic}:{step}" != os.environ.get("PAUSE_BLOCK_AT"):
        return
    with open(os.environ["PAUSE_FIFO"], "w", encoding="utf-8") as fifo:
        fifo.write(f"holding {topic}:{step}\n")
    with open(os.environ["PAUSE_GO"], encoding="utf-8") as go:
        go.read()
