"""Unit checks of the rollback reasons (the reference agent's rules, as measured)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.graphs.reply_checks import (
    is_degenerate,
    is_refusal,
    query_key,
    query_keys,
    rollback_reason,
)

CALLS = [{"name": "t", "args": {}, "id": "1"}]
APOLOGY = "I\u2019m sorry, but I can\u2019t"  # typographic apostrophes, as the reference
CANNOT_SOLVE = "I\u2019m sorry, I cannot solve"


@pytest.mark.parametrize(
    "text",
    [
        f"Hmm.</think>\n\n{APOLOGY} help with that.",
        f"Hmm.</think>\n\n  {CANNOT_SOLVE} this puzzle.",
        f"{APOLOGY} do it.",  # no thinking: the whole text is the visible part
        "I ran short.</think>\n\nGiven the time constraint, my best guess is \\boxed{7}.",
        "Under a time constraint I stop here.</think>\n\nDone.",  # in the thinking
    ],
    ids=["apology", "cannot-solve", "no-thinking", "time-constraint", "in-thinking"],
)
def test_refusals_are_the_two_openings_or_time_constraint(text: str) -> None:
    assert is_refusal(AIMessage(text))
    assert rollback_reason(AIMessage(text)) == "refusal"


@pytest.mark.parametrize(
    "text",
    [
        "Hmm.</think>\n\nI'm sorry, but I can't help with that.",  # plain ASCII
        "Hmm.</think>\n\nI am sorry, I cannot help.",
        "Hmm.</think>\n\nAs an AI, I cannot browse.",
        "Hmm.</think>\n\nI apologize for the confusion. \\boxed{3}",
        f"Thinking.</think>\n\nThe page says: {APOLOGY} tell.",  # not at the beginning
        f"{APOLOGY} find it myself.</think>\n\nSo \\boxed{{2}}.",  # the thinking's opening
        "Hmm.</think>\n\nTime Constraint noted.",  # exact words only
    ],
    ids=["ascii", "i-am", "as-an-ai", "apologize", "middle", "thinking", "case"],
)
def test_other_apologies_are_not_refusals(text: str) -> None:
    assert not is_refusal(AIMessage(text))
    assert rollback_reason(AIMessage(text)) is None


def test_a_refusal_with_a_call_is_not_a_refusal() -> None:
    text = f"{APOLOGY} answer yet; given the time constraint, one search."
    assert not is_refusal(AIMessage(text, tool_calls=CALLS))


def test_time_constraint_in_thinking_split_off_by_a_reasoning_parser_counts() -> None:
    reasoning = {"reasoning_content": "No time constraint applies? There is one."}
    assert is_refusal(AIMessage("\\boxed{1}", additional_kwargs=reasoning))


def test_degenerate_when_the_last_50_characters_occur_more_than_5_times() -> None:
    unit = "the same fifty characters, over and over again ..."  # 50 characters
    assert len(unit) == 50
    assert is_degenerate("Let me think. " + unit * 6)
    assert not is_degenerate("Let me think. " + unit * 5)
    # not only adjacent repeats: the tail's occurrences may lie anywhere
    spread = "".join(f"step {i}: {unit}\n" for i in range(6))[:-1]
    assert is_degenerate(spread)
    assert not is_degenerate("A normal reply that ends.\n\n" * 3)
    assert not is_degenerate("ab" * 20)  # shorter than the tail: it occurs once
    assert not is_degenerate("")


def test_degenerate_counts_the_thinking_of_a_reasoning_parser() -> None:
    unit = "and so the same sentence comes back once again, ok"  # 50 characters
    reply = AIMessage(unit, additional_kwargs={"reasoning_content": unit * 5})
    assert rollback_reason(reply) == "degenerate"  # five in the thinking, one visible
    assert rollback_reason(AIMessage(unit)) is None


def test_query_keys_compare_exactly_the_declared_arguments() -> None:
    reply = AIMessage(
        "",
        tool_calls=[
            {"name": "search", "args": {"q": "  MiroThinker  Paper ", "num": 5}, "id": "1"},
            {"name": "echo", "args": {"text": "x"}, "id": "2"},
            {"name": "scrape", "args": {"url": "https://a.b", "info_to_extract": "x"}, "id": "3"},
        ],
    )
    dedupe = {"search": ["q"], "scrape": ["url", "info_to_extract"]}
    keys = query_keys(reply, dedupe)
    assert keys == [
        'search:{"q": "  MiroThinker  Paper "}',
        'scrape:{"info_to_extract": "x", "url": "https://a.b"}',
    ]
    other = {"name": "scrape", "args": {"url": "https://a.b", "info_to_extract": "y"}, "id": "4"}
    assert query_key(other, dedupe) not in keys  # same URL, other information asked
    assert query_key(reply.tool_calls[1], dedupe) is None
    assert rollback_reason(reply, keys) == "duplicate"
    assert rollback_reason(reply, []) is None


def test_malformed_only_replies_are_rolled_back() -> None:
    bad = [{"name": "t", "args": "{", "id": "1", "error": "bad", "type": "invalid_tool_call"}]
    assert rollback_reason(AIMessage("x", invalid_tool_calls=bad)) == "malformed"
    assert rollback_reason(AIMessage("x", response_metadata={"stray_tags": True})) == "malformed"


def test_a_last_call_without_its_closing_tag_is_rolled_back() -> None:
    closed = "Searching.\n" + render_call("lab", "t", {})
    unclosed = closed.removesuffix("</use_mcp_tool>")
    assert rollback_reason(AIMessage(unclosed, tool_calls=CALLS)) == "unclosed_call"
    assert rollback_reason(AIMessage(closed, tool_calls=CALLS)) is None
