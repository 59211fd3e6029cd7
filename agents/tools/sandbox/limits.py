"""What one sandbox call may use, and how running past a limit is told to the model.

The child sets its resource limits itself (``child.serve``); the host enforces
the wall time and keeps the output within ``max_output_chars``.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from mirograph.agents.tools.sandbox.child import head_tail, truncated


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0
    cpu_s: int = 60
    memory_mb: int = 1024
    max_processes: int = 64
    max_file_mb: int = 100
    max_output_chars: int = 20_000
    network: bool = False


#: Room for the marker a cut output carries besides its ``max_chars`` of output.
MARKER_CHARS = 64


def truncate(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` (head and tail) with a marker; the host's last guard.

    An output the child already cut (``max_chars`` plus its marker) is left as it is:
    cut again, its marker would count only what the second cut dropped.
    """
    if len(text) <= max_chars + MARKER_CHARS:
        return text
    head, tail = head_tail(max_chars)
    omitted = len(text) - head - tail
    return truncated(text[:head], text[-tail:] if tail else "", omitted, "characters")


def exit_reason(code: int | None, limits: Limits) -> str:
    """Why a child ended, in words (bwrap reports a signal as 128 + its number)."""
    if code is None:
        return "stopped unexpectedly"
    number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    if number == signal.SIGXCPU:
        return f"ran past the CPU time limit of {limits.cpu_s} s and was stopped"
    if number == signal.SIGKILL:
        return "was killed (often the memory or process limit)"
    if number:
        name = signal.Signals(number).name if number in signal.valid_signals() else number
        return f"was killed by signal {name}"
    return f"exited with status {code}"
