"""Tools for transcript, show and export tests, loaded by import path from flow files.

``fetch`` returns a long, deterministic page (``page``): longer than the blob
offload threshold, so the store keeps it as a blob, and distinct per topic and
step, so a test can look for each one verbatim. ``reveal`` echoes the search
key from the environment, as a careless tool might.
"""

from __future__ import annotations

import os


def page(topic: str, step: int) -> str:
    """The text ``fetch(topic, step)`` returns (about 6,000 characters)."""
    lines = [f"{topic} page {step} line {i}: " + "lorem ipsum dolor " * 5 for i in range(60)]
    return "\n".join([*lines, f"END OF {topic} PAGE {step}"])


def fetch(topic: str, step: int) -> str:
    """Fetch page `step` of what is known about `topic`."""
    return page(topic, step)


def reveal() -> str:
    """Show which search key is configured."""
    return f"search key in use: {os.environ.get('TAVILY_API_KEY', '(none)')}"
