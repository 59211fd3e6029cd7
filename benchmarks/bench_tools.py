"""The long-run workload's custom tool: a distinct ~8 KB text per call.

The text is made of pseudo-random words seeded by the index, so results are
distinct and compress like prose, not like a repeated string. Each call's
duration is recorded so the benchmark can exclude tool time from engine time.
"""

from __future__ import annotations

import random
import time

WORDS = [
    "research",
    "engine",
    "agent",
    "context",
    "window",
    "tool",
    "result",
    "protocol",
    "checkpoint",
    "resume",
    "turn",
    "model",
    "server",
    "planner",
    "browsing",
    "coding",
    "reasoning",
    "history",
    "retention",
    "store",
    "blob",
    "delta",
    "channel",
    "graph",
    "state",
    "question",
    "answer",
    "evidence",
    "source",
    "citation",
    "page",
    "search",
    "query",
    "analysis",
    "finding",
    "report",
    "summary",
    "number",
    "value",
    "table",
    "figure",
    "year",
    "country",
    "city",
]

DURATIONS: list[float] = []
#: (start, end) of each call, on the ``time.perf_counter`` clock.
INTERVALS: list[tuple[float, float]] = []


def distinct_text(index: int) -> str:
    """Return the page text for step `index` of the investigation."""
    start = time.perf_counter()
    rng = random.Random(index)
    words: list[str] = [f"Page {index}."]
    size = len(words[0])
    while size < 8_000:
        word = rng.choice(WORDS) if rng.random() > 0.1 else str(rng.randint(0, 10**6))
        words.append(word)
        size += len(word) + 1
    text = " ".join(words)
    end = time.perf_counter()
    DURATIONS.append(end - start)
    INTERVALS.append((start, end))
    return text
