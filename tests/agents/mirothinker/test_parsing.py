"""Tests for parsing MiroThinker tool calls out of reply text."""

from __future__ import annotations

import json

import pytest

from mirograph.agents.mirothinker.parsing import (
    MAX_CALLS_PER_REPLY,
    MAX_REPAIR_CHARS,
    MalformedCall,
    ParsedCall,
    ParsedReply,
    has_unclosed_call,
    parse_reply,
    render_call,
)

SEARCH = ("search_and_scrape_webpage", "google_search")


def _call(arguments_text: str, server: str = SEARCH[0], tool: str = SEARCH[1]) -> str:
    """A canonical call block with the arguments written verbatim."""
    return (
        "<use_mcp_tool>\n"
        f"<server_name>{server}</server_name>\n"
        f"<tool_name>{tool}</tool_name>\n"
        "<arguments>\n"
        f"{arguments_text}\n"
        "</arguments>\n"
        "</use_mcp_tool>"
    )


def _single(text: str) -> ParsedCall:
    """Parse a reply that must hold exactly one good call and nothing stray."""
    reply = parse_reply(text)
    assert reply.malformed == []
    assert reply.stray_tags is False
    assert reply.needs_rollback is False
    assert len(reply.calls) == 1
    return reply.calls[0]


def test_render_call_is_the_canonical_block() -> None:
    assert render_call("srv", "tl", {"q": "x"}) == (
        "<use_mcp_tool>\n"
        "<server_name>srv</server_name>\n"
        "<tool_name>tl</tool_name>\n"
        "<arguments>\n"
        '{"q": "x"}\n'
        "</arguments>\n"
        "</use_mcp_tool>"
    )


def test_render_call_keeps_unicode_unescaped() -> None:
    assert '{"q": "北京"}' in render_call("s", "t", {"q": "北京"})


def test_one_call() -> None:
    reply = parse_reply(_call('{"q": "mirothinker"}'))
    assert reply == ParsedReply(
        content="",
        calls=[ParsedCall(*SEARCH, {"q": "mirothinker"})],
        malformed=[],
        stray_tags=False,
    )


def test_text_then_call_gives_content() -> None:
    reply = parse_reply("I will search for it.  \n\n" + _call('{"q": "a"}'))
    assert reply.content == "I will search for it."
    assert reply.calls == [ParsedCall(*SEARCH, {"q": "a"})]


def test_thinking_then_text_then_call() -> None:
    text = "Let me reason about <b>this</b>.\n</think>\n\nSearching now.\n\n" + _call('{"q": "a"}')
    reply = parse_reply(text)
    assert reply.content == "Let me reason about <b>this</b>.\n</think>\n\nSearching now."
    assert reply.calls == [ParsedCall(*SEARCH, {"q": "a"})]
    assert reply.stray_tags is False


def test_two_calls_in_order() -> None:
    text = (
        "Two things.\n"
        + _call('{"q": "first"}')
        + "\n\n"
        + _call('{"url": "https://e.com", "info_to_extract": "title"}', "jina", "scrape")
    )
    reply = parse_reply(text)
    assert reply.content == "Two things."
    assert reply.calls == [
        ParsedCall(*SEARCH, {"q": "first"}),
        ParsedCall("jina", "scrape", {"url": "https://e.com", "info_to_extract": "title"}),
    ]
    assert reply.stray_tags is False


def test_nested_json_with_lists() -> None:
    arguments = {"a": {"b": [1, 2, {"c": [True, False]}]}, "d": [], "e": 1.5}
    assert _single(render_call("s", "t", arguments)).arguments == arguments


def test_empty_arguments() -> None:
    assert _single(_call("{}")).arguments == {}


def test_blank_arguments_count_as_empty_object() -> None:
    assert _single(_call("  ")).arguments == {}


def test_minified_one_line_call() -> None:
    text = (
        "Go.<use_mcp_tool><server_name>s</server_name><tool_name>t</tool_name>"
        '<arguments>{"q":"x"}</arguments></use_mcp_tool>'
    )
    reply = parse_reply(text)
    assert reply.content == "Go."
    assert reply.calls == [ParsedCall("s", "t", {"q": "x"})]
    assert reply.stray_tags is False


def test_whitespace_around_names_is_stripped() -> None:
    text = (
        "<use_mcp_tool>\n<server_name>\n  s  \n</server_name>\n"
        "<tool_name>  t\n</tool_name>\n<arguments>\n\n  {}  \n\n</arguments>\n</use_mcp_tool>"
    )
    assert _single(text) == ParsedCall("s", "t", {})


def test_unicode_round_trips() -> None:
    arguments = {"q": "北京天气 🌧️", "hl": "zh-CN"}
    assert _single(render_call("s", "t", arguments)).arguments == arguments


def test_escaped_unicode_is_decoded() -> None:
    assert _single(_call('{"q": "\\u5317\\u4eac"}')).arguments == {"q": "北京"}


def test_escaped_newlines_round_trip() -> None:
    call = _single(_call('{"code_block": "import os\\nprint(os.getcwd())\\n"}'))
    assert call.arguments == {"code_block": "import os\nprint(os.getcwd())\n"}


def test_html_inside_a_string_argument() -> None:
    call = _single(_call('{"html": "<div class=\\"a\\">x</div>", "n": 1}'))
    assert call.arguments == {"html": '<div class="a">x</div>', "n": 1}


def test_closing_tags_inside_a_string_argument() -> None:
    arguments = {"code_block": "s = '</arguments>\\n</use_mcp_tool>'\nprint(s)"}
    text = render_call("tool-python", "run_python_code", arguments)
    assert _single(text).arguments == arguments


def test_missing_final_closing_tag_still_parses_but_rolls_back() -> None:
    text = "x\n<use_mcp_tool>\n<server_name>s</server_name>\n<tool_name>t</tool_name>\n"
    text += '<arguments>\n{"q": "a"}\n</arguments>\n'
    reply = parse_reply(text)
    assert reply.calls == [ParsedCall("s", "t", {"q": "a"})]  # still readable
    assert (reply.malformed, reply.stray_tags) == ([], False)
    assert reply.unclosed_call is True
    assert reply.needs_rollback is True
    assert has_unclosed_call(text)


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('{"q": "a", "num": 5,}', {"q": "a", "num": 5}),
        ('{"q": "a", "num": 5', {"q": "a", "num": 5}),
        ("{'q': 'a', 'num': 5}", {"q": "a", "num": 5}),
    ],
    ids=["trailing-comma", "missing-brace", "single-quotes"],
)
def test_broken_json_is_repaired(broken: str, expected: dict[str, object]) -> None:
    assert _single(_call(broken)).arguments == expected


def test_null_valued_keys_are_dropped_at_top_level_only() -> None:
    call = _single(_call('{"q": "a", "tbs": null, "opts": {"x": null}}'))
    assert call.arguments == {"q": "a", "opts": {"x": None}}


def test_null_keys_dropped_after_repair_too() -> None:
    assert _single(_call('{"q": "a", "gl": null,}')).arguments == {"q": "a"}


@pytest.mark.parametrize(
    "raw",
    ["just some words", "[1, 2, 3]", '"a string"', "42", "garbage {"],
    ids=["words", "list", "string", "number", "empty-repair"],
)
def test_arguments_not_repairable_into_a_dict_are_malformed(raw: str) -> None:
    reply = parse_reply("text\n" + _call(raw))
    assert reply.calls == []
    assert len(reply.malformed) == 1
    bad = reply.malformed[0]
    assert (bad.server, bad.tool, bad.raw_arguments) == (*SEARCH, raw)
    assert bad.error
    assert "\n" not in bad.error
    assert reply.needs_rollback is True
    assert reply.content == "text"


def test_malformed_call_beside_a_good_call_does_not_roll_back() -> None:
    reply = parse_reply(_call("not json") + "\n" + _call('{"q": "b"}'))
    assert reply.calls == [ParsedCall(*SEARCH, {"q": "b"})]
    assert [m.raw_arguments for m in reply.malformed] == ["not json"]
    assert reply.needs_rollback is False


def test_unterminated_arguments_are_malformed() -> None:
    text = "<use_mcp_tool>\n<server_name>s</server_name>\n<tool_name>t</tool_name>\n<arguments>\n{"
    reply = parse_reply(text)
    assert reply.calls == []
    assert reply.malformed == [MalformedCall("s", "t", "{", "no closing </arguments> tag")]
    assert reply.needs_rollback is True


def test_tag_fragments_without_a_call_roll_back() -> None:
    reply = parse_reply("Thinking.\n<use_mcp_tool>\n<server_name>x</server_name>\n")
    assert reply.calls == []
    assert reply.malformed == []
    assert reply.stray_tags is True
    assert reply.needs_rollback is True
    assert reply.content == "Thinking."


def test_lone_closing_tag_is_stray() -> None:
    reply = parse_reply("The answer is \\boxed{4}.</arguments>")
    assert reply.stray_tags is True
    assert reply.needs_rollback is True


def test_broken_head_does_not_swallow_the_next_call() -> None:
    text = "<use_mcp_tool><server_name>x\n\n" + _call('{"q": "a"}')
    reply = parse_reply(text)
    assert reply.calls == [ParsedCall(*SEARCH, {"q": "a"})]
    assert reply.stray_tags is True
    assert reply.needs_rollback is False


def test_plain_answer_has_no_rollback() -> None:
    text = "Reasoning done.</think>\n\nThe answer is \\boxed{42}.  \n"
    reply = parse_reply(text)
    assert reply == ParsedReply(
        content="Reasoning done.</think>\n\nThe answer is \\boxed{42}.",
        calls=[],
        malformed=[],
        stray_tags=False,
    )
    assert reply.needs_rollback is False


def test_mentioning_arguments_in_prose_is_not_a_tag() -> None:
    reply = parse_reply("The arguments were server_name and tool_name.")
    assert reply.stray_tags is False


def test_closing_tags_followed_by_spaces_inside_a_string() -> None:
    arguments = {"q": "a </arguments> </use_mcp_tool> b", "n": 2}
    text = "see\n" + render_call("s", "t", arguments) + "\n"
    reply = parse_reply(text)
    assert reply.calls == [ParsedCall("s", "t", arguments)]
    assert reply.malformed == []
    assert reply.stray_tags is False


# --- hostile replies: never an exception, never slower than linear -------------------------

HEAD = "<use_mcp_tool><server_name>s</server_name><tool_name>t</tool_name><arguments>"
TAIL = "</arguments></use_mcp_tool>"


@pytest.mark.parametrize(
    "raw",
    ["[" * 1000, "[" * 1000 + "]" * 1000, '{"a":' * 600, '{"a": ' + "[" * 5000 + "]" * 5000 + "}"],
    ids=["open-lists", "closed-lists", "open-objects", "deep-value"],
)
def test_deeply_nested_arguments_are_malformed_not_an_exception(raw: str) -> None:
    reply = parse_reply("x" + HEAD + raw + TAIL)
    assert reply.calls == []
    assert len(reply.malformed) == 1
    assert reply.needs_rollback is True


def test_nesting_within_the_limit_parses() -> None:
    raw = '{"a": ' + "[" * 60 + "]" * 60 + "}"
    assert _single(HEAD + raw + TAIL).arguments == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    ["{" * 5000, '["' * 5000, "[{" * 5000, '{"a": ' + "[" * 65, '{"q": "x"}' + "[" * 100],
    ids=["open-objects", "open-lists-of-strings", "mixed", "just-past-the-limit", "after-a-value"],
)
def test_deep_unclosed_brackets_are_not_repaired(raw: str) -> None:
    """json_repair takes seconds on such runs; the call is refused before it, and says why."""
    reply = parse_reply(HEAD + raw + TAIL)
    assert reply.calls == []
    error = reply.malformed[0].error
    assert error.startswith("invalid JSON (")
    assert error.endswith(
        "not repaired: brackets nest deeper than 64 levels; close every [ and { and nest less"
    )


def test_brackets_inside_strings_do_not_count_towards_the_depth() -> None:
    raw = '{"code": "' + "[" * 200 + '", }'
    assert _single(HEAD + raw + TAIL).arguments == {"code": "[" * 200}


def test_nesting_past_the_limit_is_named() -> None:
    raw = '{"a": ' + "[" * 100 + "]" * 100 + "}"
    reply = parse_reply(HEAD + raw + TAIL)
    assert reply.malformed[0].error == "arguments nest deeper than 64 levels"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"q": "\\ud800"}', "invalid unicode"),
        ('{"n": 1e999}', "cannot be written as JSON"),
    ],
    ids=["lone-surrogate", "infinity"],
)
def test_unusable_values_are_malformed(raw: str, problem: str) -> None:
    reply = parse_reply(HEAD + raw + TAIL)
    assert reply.calls == []
    assert problem in reply.malformed[0].error


@pytest.mark.parametrize(
    "raw", ['{"n": ' + "9" * 5000 + "}", '{"n": ' + "9" * 5000 + ",}", '{"n": [-' + "9" * 5000]
)
def test_huge_integers_are_malformed_not_strings(raw: str) -> None:
    """Python refuses to read integers this long, and json_repair would turn one into
    a string the model never wrote: the call is malformed, and says why."""
    reply = parse_reply(HEAD + raw + TAIL)
    assert reply.calls == []
    assert reply.malformed[0].error.endswith("arguments hold an integer of more than 4300 digits")


def test_long_digit_strings_and_integers_within_the_limit_parse() -> None:
    raw = '{"s": "' + "9" * 5000 + '", "n": ' + "9" * 4300 + "}"
    assert _single(HEAD + raw + TAIL).arguments == {"s": "9" * 5000, "n": int("9" * 4300)}


def test_repair_of_long_arguments_is_not_attempted() -> None:
    raw = '{"q": "' + "x" * MAX_REPAIR_CHARS + '" "n": 1}'  # a missing comma: json_repair's
    reply = parse_reply(HEAD + raw + TAIL)
    assert reply.malformed[0].error.endswith(
        f"; too long to repair ({len(raw)} characters): write the arguments as valid JSON"
    )


def test_short_arguments_still_get_json_repair() -> None:
    assert _single(_call('{"q": "x" "n": 1}')).arguments == {"q": "x", "n": 1}


def test_one_reply_hands_at_most_the_cap_to_json_repair() -> None:
    """json_repair's worst case grows faster than linearly: the cap is the reply's, not
    each call's, so ten calls cost no more than one."""
    half = '{"q": "' + "x" * (MAX_REPAIR_CHARS // 2 - 20) + '" "n": 1}'  # a missing comma
    reply = parse_reply(_call(half) + _call(half) + _call(half) + _call('{"q": "y"}'))
    assert [call.arguments["n"] for call in reply.calls[:2]] == [1, 1]
    assert reply.calls[2] == ParsedCall(*SEARCH, {"q": "y"})  # valid JSON needs no repair
    assert len(reply.malformed) == 1
    assert reply.malformed[0].error.endswith(
        f"not repaired: other calls spent the reply's {MAX_REPAIR_CHARS} characters:"
        " write the arguments as valid JSON"
    )


def test_calls_past_the_cap_are_skipped_and_reported() -> None:
    text = "go\n" + "\n".join(_call(f'{{"q": "{n}"}}') for n in range(3000))
    reply = parse_reply(text)
    assert [c.arguments["q"] for c in reply.calls] == [str(n) for n in range(MAX_CALLS_PER_REPLY)]
    assert len(reply.malformed) == 1
    skipped = reply.malformed[0]
    assert (skipped.server, skipped.tool) == SEARCH
    assert f"at most {MAX_CALLS_PER_REPLY} tool calls" in skipped.error
    assert f"the {3000 - MAX_CALLS_PER_REPLY - 1} after it were not run" in skipped.error
    assert reply.needs_rollback is False


def test_malformed_calls_count_toward_the_cap() -> None:
    text = "\n".join([_call("not json")] * MAX_CALLS_PER_REPLY + [_call('{"q": "late"}')])
    reply = parse_reply(text)
    assert reply.calls == []
    assert len(reply.malformed) == MAX_CALLS_PER_REPLY + 1
    assert reply.malformed[-1].error.startswith("skipped:")


def test_a_call_without_a_close_does_not_swallow_the_next_one() -> None:
    text = HEAD + '{"q": "a"' + "\n" + _call('{"q": "b"}')
    reply = parse_reply(text)
    assert reply.calls == [ParsedCall(*SEARCH, {"q": "b"})]
    assert reply.malformed == [MalformedCall("s", "t", '{"q": "a"', "no closing </arguments> tag")]


# --- a last call left unclosed (the reference rolls it back) -------------------------------


def test_only_the_last_call_decides_unclosed() -> None:
    first_open = HEAD + '{"q": "a"}</arguments>\n'  # closed by the next call's head only
    reply = parse_reply(first_open + _call('{"q": "b"}'))
    assert len(reply.calls) == 2
    assert reply.unclosed_call is False
    assert reply.needs_rollback is False
    last_open = _call('{"q": "a"}') + "\n" + HEAD + '{"q": "b"}</arguments>'
    assert parse_reply(last_open).unclosed_call is True


@pytest.mark.parametrize(
    "text",
    ["No call at all. \\boxed{1}", "Text " + HEAD + '{"q": "a"}' + TAIL, "</use_mcp_tool>"],
    ids=["no-call", "closed", "lone-close"],
)
def test_replies_without_an_open_last_call_are_not_unclosed(text: str) -> None:
    assert parse_reply(text).unclosed_call is False
    assert not has_unclosed_call(text)


# --- long arguments: the slips models make are mended in linear time ------------------------

#: Code as a model means it: quotes, a regex with \d and \s, tabs, a backslash, unicode.
CODE_LINE = "if re.match(r\"\\d+\\s*\", row['id']):\n\ttotal += 1  # 北京 \\ ok\n"


def _written(code: str) -> str:
    """``code`` as a model writes it into a JSON string: quotes escaped, but raw newlines
    and tabs and the regex's lone backslashes left as they are."""
    return code.replace('"', '\\"')


@pytest.mark.parametrize(
    ("tail", "extra"),
    [
        ('"}', {}),
        ('"', {}),
        ("", {}),
        ('", "timeout": 30,}', {"timeout": 30}),
        ('", "check": True, "env": None', {"check": True}),
    ],
    ids=["whole", "no-brace", "cut-off", "trailing-comma", "python-literals"],
)
def test_long_code_block_with_raw_newlines_and_bad_escapes_is_mended_exactly(
    tail: str, extra: dict[str, object]
) -> None:
    code = CODE_LINE * 400 + "print(total)"
    assert len(code) >= 20_000 and "\\d" in code and "\n" in code and "\t" in code
    raw = '{"code_block": "' + _written(code) + tail
    call = _single(_call(raw, "tool-python", "run_python_code"))
    assert call.arguments == {"code_block": code, **extra}


def test_mended_arguments_in_single_quotes() -> None:
    raw = "{'q': 'say \"hi\"\n' + 'x' * 0, 'n': 2}".replace(" + 'x' * 0", "")
    assert _single(_call(raw)).arguments == {"q": 'say "hi"\n', "n": 2}


def test_a_mended_value_that_is_no_object_is_malformed() -> None:
    reply = parse_reply(_call('["a", "b",'))
    assert reply.calls == []
    assert reply.malformed[0].error.endswith("repair gave a list, not an object")


#: Flat garbage on which json_repair is quadratic or worse (minutes at 32k characters):
#: a prefix, the unit repeated, and whether it reads as one string left open (which
#: ``_mend`` closes, into a JSON string: no object) rather than as too long to repair.
GARBAGE = [
    (" ", '"{]\\', True),
    ("\n:", "]null{", False),
    (",,", "}{true", False),
    ('"', '["a"', False),
    ('{"a":[', '"b', False),
    ("*{", '\\"]{{', False),
    ('"', "{'", True),
    ("", "{]true", False),
]


@pytest.mark.parametrize(("prefix", "unit", "a_string"), GARBAGE, ids=[g[1] for g in GARBAGE])
def test_long_garbage_is_refused_with_one_line(prefix: str, unit: str, a_string: bool) -> None:
    raw = prefix + unit * (32_768 // len(unit))
    reply = parse_reply("x" + HEAD + raw + TAIL)
    assert reply.calls == []
    (bad,) = reply.malformed
    assert bad.error.startswith("invalid JSON (")
    assert "\n" not in bad.error
    if a_string:
        assert bad.error.endswith("repair gave a str, not an object")
    else:
        too_long = f"too long to repair ({len(raw.strip())} characters)"
        assert bad.error.endswith(f"; {too_long}: write the arguments as valid JSON")
