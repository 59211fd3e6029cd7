"""Team tools that leak secrets: one echoes an API key, one fails quoting another.

A tool may print its environment or an error that quotes a credential; the
engine must keep such values out of events, checkpoints and exports.
"""

from __future__ import annotations

import os


def lookup(topic: str, step: int) -> str:
    """Look up one fact about `topic` (step `step` of the search)."""
    return f"lookup result {topic}#{step}; configured with {os.environ['TAVILY_API_KEY']}"


def compute(topic: str, step: int) -> str:
    """Compute one intermediate result for `topic` (step `step` of the work)."""
    raise RuntimeError(f"backend refused key {os.environ['MIROGRAPH_API_KEY']} for {topic}")
