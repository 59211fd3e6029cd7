"""Property-based tests of ``parse_reply``: any text parses, without exception, in linear time."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mirograph.agents.mirothinker.parsing import ParsedReply, parse_reply, render_call

HEAD = "<use_mcp_tool><server_name>s</server_name><tool_name>t</tool_name><arguments>"
TAIL = "</arguments></use_mcp_tool>"
TAGS = ["use_mcp_tool", "server_name", "tool_name", "arguments"]
#: Units of flat garbage on which json_repair is quadratic or worse.
GARBAGE = ['"{]\\', "]null{", "}{true", '["a"', '"b', '\\"]{{', "{'", "{]true"]
#: Pieces a hostile or broken reply is made of: protocol tags (whole and cut),
#: JSON punctuation, escapes, lone surrogates, huge numbers, deep brackets and
#: long runs of garbage.
PIECES = st.one_of(
    st.just(HEAD),
    st.sampled_from([f"<{tag}>" for tag in TAGS] + [f"</{tag}>" for tag in TAGS]),
    st.sampled_from(["<use_mcp", "</argu", "<", ">", "{", "}", "[", "]", '"', "'", ":", ","]),
    st.sampled_from(["\\", "\\u", "\\ud800", "null", "true", "1e999", "9" * 5000, "\n", " "]),
    st.integers(1, 3000).map(lambda depth: "[" * depth),
    st.integers(1, 3000).map(lambda depth: '{"a":' * depth),
    st.tuples(st.sampled_from(GARBAGE), st.integers(1, 8000)).map(lambda run: run[0] * run[1]),
    st.text(st.characters(codec=None, categories=None), max_size=20),
)
CALLS = st.lists(PIECES, max_size=4).map(lambda pieces: HEAD + "".join(pieces) + TAIL)
REPLIES = st.lists(PIECES | CALLS, max_size=40).map("".join)
ARGUMENTS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
FAST = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _check(reply: ParsedReply, text: str) -> None:
    """What holds of every parse: a consistent outcome the engine can act on."""
    assert len(reply.calls) + len(reply.malformed) <= 11
    assert text.startswith(reply.content)
    for call in reply.calls:
        json.dumps(call.arguments, allow_nan=False).encode("utf-8")
    for bad in reply.malformed:
        assert bad.error and "\n" not in bad.error


@FAST
@given(REPLIES)
def test_any_text_parses_without_exception(text: str) -> None:
    _check(parse_reply(text), text)


@FAST
@given(st.lists(st.dictionaries(st.text(max_size=8), ARGUMENTS, max_size=3), max_size=14))
def test_rendered_calls_round_trip_up_to_the_cap(calls: list[dict[str, object]]) -> None:
    text = "Working.\n" + "\n".join(render_call("s", "t", args) for args in calls)
    reply = parse_reply(text)
    _check(reply, text)
    kept = [{k: v for k, v in args.items() if v is not None} for args in calls[:10]]
    assert [call.arguments for call in reply.calls] == kept
    assert len(reply.malformed) == (1 if len(calls) > 10 else 0)


def _growth(
    unit: str, size: int = 120_000, factor: int = 3, wrap: Callable[[str], str] = str
) -> float:
    """How much longer ``factor`` times the text takes to parse than ``size`` characters.

    The text is ``unit`` repeated, passed through ``wrap``.

    Measured in this thread's CPU time, and small and large parses alternate
    with the best of three of each kept, so other processes on a loaded
    machine do not count. Linear is ``factor``; quadratic is
    ``factor`` squared. Sizes start past the CPU caches, whose effects are not
    the parser's. The call cap is lifted: the scan itself is measured.

    The garbage collector is paused while timing: a full collection walks the
    whole test process's heap (0.03 s under pytest), and whether one falls in
    the small or the large parse depends on what ran before, not on the parser.
    Arguments opening hundreds of '[' make the strict decoder hold that many
    lists at once, enough to trigger collections, and so a 7-10x "growth" that
    is one collection, not the parse.
    """
    repeats = max(1, size // len(unit))
    small, large = wrap(unit * repeats), wrap(unit * repeats * factor)
    best = {small: float("inf"), large: float("inf")}
    parse_reply(small[:2000], max_calls=10**9)  # warm up
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            for text in (small, large):
                started = time.thread_time()
                parse_reply(text, max_calls=10**9)
                best[text] = min(best[text], time.thread_time() - started)
    finally:
        gc.enable()
    return best[large] / max(best[small], 0.005)


@pytest.mark.parametrize(
    "unit",
    [
        render_call("s", "t", {"q": "a" * 200}),
        HEAD + '{"q": "</arguments></use_mcp_tool>' + "b" * 50 + '"}' + TAIL,
        HEAD + "x</arguments>junk ",
        HEAD + '{"q": "x</arguments>junk ',
        "</arguments>" * 5 + "<use_mcp_tool>",
    ],
    ids=["good-calls", "closes-in-strings", "closes-without-tail", "open-strings", "fragments"],
)
def test_parse_time_is_linear_in_the_number_of_calls(unit: str) -> None:
    assert _growth(unit) < 5.2  # 3x the text: about 3x the time, not 9x


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(PIECES, max_size=10).map(lambda pieces: HEAD + "".join(pieces)))
def test_parse_time_grows_linearly_with_any_repeated_call(unit: str) -> None:
    assert _growth(unit) < 5.2


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(PIECES, min_size=1, max_size=10).map("".join).filter(bool))
@example(GARBAGE[1])
@example(GARBAGE[5])
def test_parse_time_grows_linearly_with_the_arguments_of_one_call(arguments: str) -> None:
    """One call's arguments, 8k characters and three times that: json_repair's
    quadratic cases (seconds at 4k characters) must not be reached."""
    assert _growth(arguments, size=8000, wrap=lambda args: HEAD + args + TAIL) < 5.2


def test_a_one_megabyte_reply_of_calls_parses_within_a_generous_bound() -> None:
    call = render_call("s", "t", {"q": "x" * 100, "n": [1, 2, {"a": None}]})
    text = "go\n" + "\n".join([call, "<use_mcp_tool><server_name>s</server_name>"] * 4500)
    assert len(text) > 1_000_000
    started = time.thread_time()  # CPU time: other processes on the machine do not count
    reply = parse_reply(text, max_calls=10**9)
    assert time.thread_time() - started < 5.0
    assert len(reply.calls) == 4500
