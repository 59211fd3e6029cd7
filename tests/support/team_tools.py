"""Tools for multi-agent tests, loaded by import path from flow files.

Each call appends ``<tool> <topic> <step>`` to ``$TEAM_LOG`` (so a test can
count how often each ran) and returns a distinct ~1 KB text. When
``<topic>:<step>`` equals ``$TEAM_BLOCK_AT`` the call announces itself on the
FIFO ``$TEAM_FIFO`` and blocks, so a test can SIGKILL the runner mid-way
through a sub-agent.
"""

from __future__ import annotations

import os
import threading


def lookup(topic: str, step: int) -> str:
    """Look up one fact about `topic` (step `step` of the search)."""
    return _record("lookup", topic, step)


def compute(topic: str, step: int) -> str:
    """Compute one intermediate result for `topic` (step `step` of the work)."""
    return _record("compute", topic, step)


def _record(tool: str, topic: str, step: int) -> str:
    log = os.environ.get("TEAM_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{tool} {topic} {step}\n")
            out.flush()
            os.fsync(out.fileno())
    if f"{topic}:{step}" == os.environ.get("TEAM_BLOCK_AT"):
        with open(os.environ["TEAM_FIFO"], "w", encoding="utf-8") as fifo:
            fifo.write(f"blocked at {topic}:{step}\n")
        threading.Event().wait()
    return f"{tool} result {topic}#{step}. " + f"detail-{topic}-{step} " * 60
