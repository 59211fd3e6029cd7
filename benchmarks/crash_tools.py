"""The crash benchmark's custom tool: a distinct ~8 KB text per call, logged and announced.

``step`` appends its index to ``$CRASH_LOG`` (fsynced, so the count survives a
SIGKILL of the runner) and writes it to the FIFO ``$CRASH_PIPE``, which the
benchmark reads to choose its kill instants. The FIFO is opened non-blocking
once per call: a missing or slow reader never blocks the tool, which never
sleeps.
"""

from __future__ import annotations

import errno
import os
import random

from bench_tools import WORDS

_IGNORED = {errno.EAGAIN, errno.ENXIO, errno.ENOENT, errno.EPIPE}


def step(index: int) -> str:
    """Return the page text for step `index` of the investigation."""
    line = f"{index}\n"
    with open(os.environ["CRASH_LOG"], "a", encoding="utf-8") as log:
        log.write(line)
        log.flush()
        os.fsync(log.fileno())
    _announce(line.encode())
    return _page(index)


def _announce(data: bytes) -> None:
    path = os.environ.get("CRASH_PIPE")
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in _IGNORED:
            return
        raise
    try:
        os.write(fd, data)
    except OSError as exc:
        if exc.errno not in _IGNORED:
            raise
    finally:
        os.close(fd)


def _page(index: int) -> str:
    """Pseudo-random words seeded by the index: distinct, and compresses like prose."""
    rng = random.Random(index)
    words = [f"Page {index}."]
    size = len(words[0])
    while size < 8_000:
        word = rng.choice(WORDS) if rng.random() > 0.1 else str(rng.randint(0, 10**6))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)
