"""Unit checks of the rollback reasons."""

from __future__ import annotations

from langchain_core.messages import AIMessage

from mirograph.graphs.reply_checks import (
    is_degenerate,
    is_refusal,
    query_keys,
    rollback_reason,
)


def test_degenerate_repetition_is_detected_and_ordinary_text_is_not() -> None:
    assert is_degenerate("Let me think. " + "the the " * 300)
    assert is_degenerate("x" + "ab" * 400)
    assert not is_degenerate("A normal reply that ends.\n\n" * 3)
    assert not is_degenerate("-" * 50)  # a short rule is not a loop
    assert not is_degenerate("Plain answer: \\boxed{42}")


def test_refusals_without_calls_or_answers_are_rolled_back() -> None:
    assert is_refusal(AIMessage("thinking</think>\n\nI'm sorry, but I can't help with that."))
    assert not is_refusal(AIMessage("I'm sorry, the answer is \\boxed{7}."))
    calls = [{"name": "t", "args": {}, "id": "1"}]
    assert not is_refusal(AIMessage("I'm sorry, let me search.", tool_calls=calls))
    assert rollback_reason(AIMessage("As an AI, I cannot browse.")) == "refusal"


def test_query_keys_normalise_declared_arguments_only() -> None:
    reply = AIMessage(
        "",
        tool_calls=[
            {"name": "search", "args": {"q": "  MiroThinker  Paper ", "num": 5}, "id": "1"},
            {"name": "echo", "args": {"text": "x"}, "id": "2"},
        ],
    )
    keys = query_keys(reply, {"search": ["q"]})
    assert keys == ['search:{"q": "mirothinker paper"}']
    assert rollback_reason(reply, keys) == "duplicate"
    assert rollback_reason(reply, []) is None


def test_malformed_only_replies_are_rolled_back() -> None:
    bad = [{"name": "t", "args": "{", "id": "1", "error": "bad", "type": "invalid_tool_call"}]
    assert rollback_reason(AIMessage("x", invalid_tool_calls=bad)) == "malformed"
    assert rollback_reason(AIMessage("x", response_metadata={"stray_tags": True})) == "malformed"
