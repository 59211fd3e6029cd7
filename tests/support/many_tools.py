"""A tool for the many-runs test, loaded by import path from a flow file.

``fetch`` returns a distinct ~8 KB page per topic and page number, well above
the blob offload threshold, so every turn of every run writes a blob.
"""

from __future__ import annotations

import random

PAGE_CHARS = 8_000
_WORDS = ["alpha", "beta", "gamma", "delta", "store", "blob", "turn", "page", "run", "loop"]


def fetch(topic: str, page: int) -> str:
    """Fetch page `page` of what is known about `topic`."""
    return page_text(topic, page)


def page_text(topic: str, page: int) -> str:
    """The page ``fetch`` returns: words seeded by topic and page, ``PAGE_CHARS`` long."""
    rng = random.Random(f"{topic}:{page}")
    words = [f"Page {page} of {topic}."]
    size = len(words[0])
    while size < PAGE_CHARS:
        word = rng.choice(_WORDS) if rng.random() > 0.2 else str(rng.randint(0, 10**6))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:PAGE_CHARS]
