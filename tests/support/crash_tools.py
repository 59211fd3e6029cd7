"""The crash test's custom tool, loaded by import path from a flow file.

``step`` appends its index to ``$CRASH_LOG`` (fsynced, so the count survives a
SIGKILL of the runner) and announces it on the FIFO ``$CRASH_PIPE``, which the
test keeps open for reading and waits on to choose its kill instants. The FIFO
is opened non-blocking once per call, so a missing or slow reader never blocks
the tool. The tool never sleeps.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

_IGNORED = {errno.EAGAIN, errno.ENXIO, errno.ENOENT, errno.EPIPE}
_WORDS = [
    "crash",
    "resume",
    "turn",
    "checkpoint",
    "model",
    "tool",
    "result",
    "store",
    "history",
    "kill",
    "step",
    "count",
]


def step(index: int) -> str:
    """Record that step `index` of the count ran and return its page text."""
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
    """A distinct text (``$CRASH_RESULT_CHARS``, default ~2 KB): words seeded by the index."""
    rng = random.Random(index)
    words = [f"Step {index} result."]
    size = len(words[0])
    while size < int(os.environ.get("CRASH_RESULT_CHARS") or 2_000):
        word = rng.choice(_WORDS) if rng.random() > 0.1 else str(rng.randint(0, 10**6))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def read_log(log: Path) -> list[int]:
    """The indices ``step`` logged, in order (empty before the first call)."""
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def drain(fd: int) -> bytes:
    """Whatever is in the progress FIFO now, without blocking."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
