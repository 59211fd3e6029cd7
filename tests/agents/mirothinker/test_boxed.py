"""Tests for extracting the final answer from \\boxed{...}."""

from __future__ import annotations

import time

import pytest

from mirograph.agents.mirothinker.boxed import PLACEHOLDERS, extract_boxed, is_placeholder


def test_single_box() -> None:
    assert extract_boxed("The answer is \\boxed{42}.") == "42"


def test_last_box_wins() -> None:
    assert extract_boxed("First \\boxed{1}, then \\boxed{2}, finally \\boxed{3}.") == "3"


def test_nested_braces() -> None:
    assert extract_boxed("So \\boxed{\\frac{1}{2}} it is.") == "\\frac{1}{2}"


def test_deeply_nested_braces() -> None:
    assert extract_boxed("\\boxed{a{b{c}d}e} tail}") == "a{b{c}d}e"


def test_escaped_braces_do_not_change_depth() -> None:
    text = "\\boxed{\\left\\{ x \\right.} and more text"
    assert extract_boxed(text) == "\\left\\{ x \\right."


def test_unclosed_last_box_runs_to_end_of_text() -> None:
    assert extract_boxed("\\boxed{1} then \\boxed{  Paris, France \n") == "Paris, France"


def test_unclosed_earlier_box_does_not_hide_a_later_one() -> None:
    assert extract_boxed("\\boxed{draft ... final: \\boxed{7}") == "7"


def test_whitespace_before_brace_and_inside() -> None:
    assert extract_boxed("answer: \\boxed {  Marie Curie  }") == "Marie Curie"


def test_multiline_content_is_stripped() -> None:
    assert extract_boxed("\\boxed{\n  a, b, c\n}") == "a, b, c"


@pytest.mark.parametrize("placeholder", ["?", "...", "…", "Unknown", " N/A ", "none", ""])
def test_placeholder_after_real_box_falls_back(placeholder: str) -> None:
    text = f"It is \\boxed{{Tokyo}}. Format: \\boxed{{{placeholder}}}"
    assert extract_boxed(text) == "Tokyo"


def test_only_placeholders_gives_none() -> None:
    assert extract_boxed("\\boxed{?} or \\boxed{unknown}") is None


@pytest.mark.parametrize("text", ["", "no box here", "boxed{1}", "\\box{1}", "\\fbox{1}"])
def test_no_box_gives_none(text: str) -> None:
    assert extract_boxed(text) is None


def test_placeholders_are_normalised_lowercase_and_stripped() -> None:
    assert all(p == p.strip().casefold() for p in PLACEHOLDERS)
    assert {"?", "...", "…", "unknown", "n/a", "none", ""} <= PLACEHOLDERS


def test_is_placeholder() -> None:
    assert is_placeholder("  UNKNOWN ")
    assert not is_placeholder("42")


def _cpu_seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        extract_boxed(text)
        best = min(best, time.thread_time() - started)
    return max(best, 0.005)


@pytest.mark.parametrize(
    "unit",
    [
        "\\boxed{?} ",
        "\\boxed{" + " " * 50 + "} ",
        "\\boxed{",
        "{" * 10,
        "\\boxed{\\{",
        "}\\boxed{}",
    ],
    ids=["placeholders", "blank-boxes", "unclosed", "braces", "escaped", "empty"],
)
def test_hostile_replies_take_linear_time_without_recursion(unit: str) -> None:
    """The scan is iterative (no recursion on nesting) and reads each character a bounded
    number of times: three times the text takes about three times as long, not nine."""
    small = unit * (400_000 // len(unit))
    extract_boxed(small)  # any exception fails the test
    assert _cpu_seconds(small * 3) / _cpu_seconds(small) < 5.2
