"""The tool of the workers' tests, loaded by import path from their flows.

``step`` appends ``<topic> <n> <pid>`` to ``$FLEET_LOG`` (so a test sees which
worker made each call, and that none but an interrupted one ran twice), waits
``$FLEET_TOOL_MS`` (so runs are in flight long enough to kill a worker under
them) and returns a text that names its topic and step.
"""

from __future__ import annotations

import os
import time


def step(topic: str, n: int) -> str:
    """Take step `n` of the work on `topic`."""
    log = os.environ.get("FLEET_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{topic} {n} {os.getpid()}\n")
            out.flush()
            os.fsync(out.fileno())
    time.sleep(int(os.environ.get("FLEET_TOOL_MS", "0")) / 1000)
    return f"result {topic}#{n}"
