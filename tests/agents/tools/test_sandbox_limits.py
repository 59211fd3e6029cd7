"""``sandbox.limits``: the host's output cut and how a child's end is told to the model."""

from __future__ import annotations

import signal

from mirograph.agents.tools.sandbox.limits import MARKER_CHARS, Limits, exit_reason, truncate


def test_output_within_the_limit_and_a_marker_is_kept_whole() -> None:
    assert truncate("x" * 100, 100) == "x" * 100
    assert truncate("x" * (100 + MARKER_CHARS), 100) == "x" * (100 + MARKER_CHARS)


def test_a_longer_output_keeps_three_quarters_head_one_quarter_tail() -> None:
    text = "h" * 150 + "m" * 1000 + "t" * 50
    cut = truncate(text, 200)
    assert cut == ("h" * 150 + "\n[... output truncated: 1000 characters omitted ...]\n" + "t" * 50)


def test_a_tiny_limit_keeps_no_tail() -> None:
    text = "abc" + "d" * MARKER_CHARS + "e"
    assert truncate(text, 3) == "abc\n[... output truncated: 65 characters omitted ...]\n"


def test_exit_reasons_name_the_limit_that_was_hit() -> None:
    limits = Limits(cpu_s=7)
    cpu = "ran past the CPU time limit of 7 s and was stopped"
    assert exit_reason(-signal.SIGXCPU, limits) == cpu
    assert exit_reason(128 + signal.SIGXCPU, limits) == cpu  # bwrap reports 128 + signal
    killed = "was killed (often the memory or process limit)"
    assert exit_reason(-signal.SIGKILL, limits) == killed
    assert exit_reason(128 + signal.SIGKILL, limits) == killed
    assert exit_reason(-signal.SIGTERM, limits) == "was killed by signal SIGTERM"
    assert exit_reason(3, limits) == "exited with status 3"
    assert exit_reason(None, limits) == "stopped unexpectedly"
