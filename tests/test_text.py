"""``mirograph.text``: the one place that decides how a message is cut to one line."""

from __future__ import annotations

import pytest

from mirograph.text import clip, describe, first_line, one_line


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_first_line_keeps_the_first_line_within_its_limit() -> None:
    assert first_line(ValueError("  one\ntwo  ")) == "one"
    assert first_line(ValueError("x" * 900)) == "x" * 500
    assert first_line(ValueError("x" * 900), 300) == "x" * 300


def test_first_line_of_nothing_says_so() -> None:
    assert first_line(ValueError()) == "(no message)"
    assert first_line(ValueError(" \n "), empty="ValueError") == "ValueError"
    assert first_line(Unprintable()) == "(its message cannot be shown)"


def test_describe_names_the_class() -> None:
    assert describe(KeyError("k")) == "KeyError: 'k'"
    assert describe(TimeoutError()) == "TimeoutError: (no message)"


def test_one_line_collapses_every_kind_of_whitespace() -> None:
    assert one_line(" a\n\tb \r\n c ") == "a b c"


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("one two three", 8, "one two…"),
        ("a\n\n   b", 10, "a b"),
        (" " * 300 + "the question", 50, "the question"),  # leading blanks cost nothing
        ("Compare:\n" + " " * 250 + "alpha and beta", 50, "Compare: alpha and beta"),
        ("x" * 100_000, 5, "xxxx…"),
        ("", 5, ""),
    ],
)
def test_clip(text: str, width: int, expected: str) -> None:
    assert clip(text, width) == expected
