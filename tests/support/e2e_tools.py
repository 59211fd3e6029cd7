"""A custom tool for the end-to-end tests, loaded by import path from a flow file.

``record_index`` appends its index to ``$E2E_LOG`` (so a test can count how often
each call ran) and returns a distinct ~2 KB text. When the index equals
``$E2E_BLOCK_AT`` it announces itself on the FIFO ``$E2E_FIFO`` and blocks, so
the test can SIGKILL the runner while a tool call is in flight.
"""

from __future__ import annotations

import os
import threading


def record_index(index: int) -> str:
    """Record that step `index` of the count was reached."""
    with open(os.environ["E2E_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{index}\n")
        log.flush()
        os.fsync(log.fileno())
    if index == int(os.environ.get("E2E_BLOCK_AT") or 0):
        with open(os.environ["E2E_FIFO"], "w", encoding="utf-8") as fifo:
            fifo.write(f"blocked at {index}\n")
        threading.Event().wait()
    return f"recorded index {index}. " + f"filler-{index} " * 200
