"""Keep-K retention: which tool results a model is shown in full."""

from __future__ import annotations

import copy

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from mirograph.agents.mirothinker.chat_model import to_openai_messages
from mirograph.state.retention import OMITTED, result_groups, retained_view

SYSTEM = "You are a research agent."
TASK = "What is the answer?"


def _turn(n: int, calls: int = 1) -> list[BaseMessage]:
    """One completed tool turn: an assistant message with ``calls`` calls and their results."""
    ids = [f"call_{n}_{j}" for j in range(calls)]
    ai = AIMessage(
        content=f"thinking about step {n}",
        tool_calls=[
            {"name": "search", "args": {"q": f"query {n}.{j}"}, "id": ids[j], "type": "tool_call"}
            for j in range(calls)
        ],
    )
    results = [
        ToolMessage(content=f"result {n}.{j}", tool_call_id=ids[j], name="search")
        for j in range(calls)
    ]
    return [ai, *results]


def _history(turns: int, calls: int = 1) -> list[BaseMessage]:
    messages: list[BaseMessage] = [SystemMessage(content=SYSTEM), HumanMessage(content=TASK)]
    for n in range(1, turns + 1):
        messages.extend(_turn(n, calls))
    return messages


def _tool_contents(messages: list[BaseMessage]) -> list[str]:
    return [m.content for m in messages if isinstance(m, ToolMessage)]  # type: ignore[misc]


# -- result_groups -------------------------------------------------------------


def test_result_groups_one_per_turn_after_the_task() -> None:
    history = _history(3)
    assert result_groups(history) == [[3], [5], [7]]


def test_result_groups_two_tool_messages_of_one_turn_are_one_group() -> None:
    history = _history(2, calls=2)
    # 0 system, 1 task, 2 ai, 3-4 results, 5 ai, 6-7 results
    assert result_groups(history) == [[3, 4], [6, 7]]


def test_result_groups_closing_request_is_its_own_group() -> None:
    history = [*_history(2), HumanMessage(content="closing request")]
    assert result_groups(history) == [[3], [5], [6]]


def test_result_groups_empty_without_results() -> None:
    assert result_groups([SystemMessage(content=SYSTEM), HumanMessage(content=TASK)]) == []


# -- retained_view ---------------------------------------------------------------


def test_turn_12_with_k5_keeps_5_results_and_6_placeholders() -> None:
    history = _history(11)  # 11 completed tool turns: the request for turn 12
    view = retained_view(history, 5)

    assert len(view) == len(history)
    contents = _tool_contents(view)
    assert contents == [OMITTED] * 6 + [f"result {n}.0" for n in range(7, 12)]
    # Each result keeps its place: the i-th ToolMessage still answers the i-th call.
    for original, shown in zip(history, view, strict=True):
        assert type(shown) is type(original)
        if isinstance(original, ToolMessage):
            assert shown.tool_call_id == original.tool_call_id  # type: ignore[attr-defined]
    # Every assistant message is intact (same content and calls).
    ais = [m for m in view if isinstance(m, AIMessage)]
    assert len(ais) == 11
    for original, shown in zip(history, view, strict=True):
        if isinstance(original, AIMessage):
            assert shown is original


def test_system_prompt_and_task_never_omitted() -> None:
    view = retained_view(_history(8), 0)
    assert view[0].content == SYSTEM
    assert view[1].content == TASK
    assert _tool_contents(view) == [OMITTED] * 8


def test_two_tool_messages_of_one_turn_are_one_result() -> None:
    history = _history(4, calls=2)
    view = retained_view(history, 2)
    assert _tool_contents(view) == [
        OMITTED,
        OMITTED,
        OMITTED,
        OMITTED,
        "result 3.0",
        "result 3.1",
        "result 4.0",
        "result 4.1",
    ]


def test_keep_minus_one_keeps_everything() -> None:
    history = _history(11, calls=2)
    view = retained_view(history, -1)
    assert [m.content for m in view] == [m.content for m in history]
    assert OMITTED not in _tool_contents(view)


def test_keep_zero_omits_every_result() -> None:
    history = [*_history(3), HumanMessage(content="closing request")]
    view = retained_view(history, 0)
    assert [m.content for m in view[2:] if not isinstance(m, AIMessage)] == [OMITTED] * 4
    assert view[1].content == TASK


def test_keep_larger_than_history_keeps_everything() -> None:
    history = _history(3)
    assert [m.content for m in retained_view(history, 10)] == [m.content for m in history]


def test_later_human_message_counts_as_a_result() -> None:
    closing = HumanMessage(content="closing request")
    history = [*_history(3), closing]
    view = retained_view(history, 2)
    # The closing request is the newest result: it and turn 3 stay, turns 1-2 go.
    assert view[-1].content == "closing request"
    assert _tool_contents(view) == [OMITTED, OMITTED, "result 3.0"]


def test_later_human_message_can_be_omitted() -> None:
    history = [*_history(1), HumanMessage(content="a sub-agent report"), *_turn(2)]
    view = retained_view(history, 1)
    assert view[4].content == OMITTED
    assert isinstance(view[4], HumanMessage)
    assert view[-1].content == "result 2.0"


def test_stored_history_and_messages_not_modified() -> None:
    history = _history(11, calls=2)
    snapshot = copy.deepcopy(history)
    ids = [id(m) for m in history]

    view = retained_view(history, 5)

    assert view is not history
    assert [id(m) for m in history] == ids
    assert history == snapshot
    assert OMITTED not in _tool_contents(history)
    assert OMITTED in _tool_contents(view)


# -- through the MiroThinker converter ------------------------------------------


def test_turn_12_view_in_openai_shape() -> None:
    view = retained_view(_history(11), 5)
    out = to_openai_messages(view, {})

    assert out[0] == {"role": "system", "content": SYSTEM}
    assert out[1] == {"role": "user", "content": TASK}
    rest = out[2:]
    assert len(rest) == 22
    assert [m["role"] for m in rest] == ["assistant", "user"] * 11
    users = [m["content"] for m in rest if m["role"] == "user"]
    assert users == [OMITTED] * 6 + [f"result {n}.0" for n in range(7, 12)]
    assistants = [m["content"] for m in rest if m["role"] == "assistant"]
    for n, text in enumerate(assistants, start=1):
        assert text.startswith(f"thinking about step {n}")
        assert "<use_mcp_tool>" in text
        assert f"query {n}.0" in text


def test_omitted_group_of_two_shows_placeholder_once() -> None:
    view = retained_view(_history(3, calls=2), 1)
    out = to_openai_messages(view, {})
    users = [m["content"] for m in out[2:] if m["role"] == "user"]
    assert users == [OMITTED, OMITTED, "result 3.0\nresult 3.1"]
    assert [m["role"] for m in out[2:]] == ["assistant", "user"] * 3


def test_two_kept_results_joined_by_newline() -> None:
    out = to_openai_messages(retained_view(_history(1, calls=2), 5), {})
    assert out[-1] == {"role": "user", "content": "result 1.0\nresult 1.1"}
    assert len(out) == 4


def test_reasoning_content_is_sent_inside_think_tags() -> None:
    ai = AIMessage(
        content="The answer is \\boxed{4}.",
        additional_kwargs={"reasoning_content": "2 + 2 is 4"},
    )
    out = to_openai_messages([SystemMessage(content=SYSTEM), HumanMessage(content=TASK), ai], {})
    text = out[-1]["content"]
    assert out[-1]["role"] == "assistant"
    assert text.startswith("<think>")
    think_end = text.index("</think>")
    assert "2 + 2 is 4" in text[:think_end]
    assert text[think_end:].endswith("The answer is \\boxed{4}.")


def test_no_reasoning_content_sends_content_as_is() -> None:
    ai = AIMessage(content="plain reply")
    out = to_openai_messages([SystemMessage(content=SYSTEM), HumanMessage(content=TASK), ai], {})
    assert out[-1] == {"role": "assistant", "content": "plain reply"}
