"""Block retention: the same result text on average as keep-K, better prefix reuse."""

from __future__ import annotations

import itertools

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from mirograph.state.retention import OMITTED, RetentionWindow, omitted_count


def history(turns: int) -> list:
    messages = [SystemMessage("s", id="s"), HumanMessage("task", id="h")]
    for n in range(1, turns + 1):
        call = {"name": "t", "args": {"n": n}, "id": f"c{n}"}
        messages.append(AIMessage(f"call {n}", tool_calls=[call], id=f"a{n}"))
        messages.append(ToolMessage(f"result {n}", tool_call_id=f"c{n}", id=f"r{n}"))
    return messages


def test_keep_last_is_exactly_keep_k() -> None:
    assert [omitted_count(n, 5) for n in range(1, 9)] == [0, 0, 0, 0, 0, 1, 2, 3]


def test_blocks_cycle_around_k_and_average_to_k() -> None:
    kept = [n - omitted_count(n, 5, 5) for n in range(10, 110)]
    assert set(kept) == {3, 4, 5, 6, 7}
    assert sum(kept) / len(kept) == 5


def test_block_views_only_grow_at_the_end_between_omissions() -> None:
    window = RetentionWindow(5, block=5)
    previous: list[str] | None = None
    extensions = 0
    for turns in range(1, 41):
        view = [m.content for m in window.view(history(turns))]
        assert sum(c.startswith("result") for c in view) in range(1, 8)
        if previous is not None and view[: len(previous)] == previous:
            extensions += 1
        previous = view
    assert extensions >= 30  # 4 of every 5 turns the prompt is the old one plus the new turn


def test_keep_last_views_change_in_the_middle_every_turn() -> None:
    window = RetentionWindow(5)
    views = [[m.content for m in window.view(history(turns))] for turns in range(6, 12)]
    for before, after in itertools.pairwise(views):
        assert after[: len(before)] != before
        assert after.count(OMITTED) == before.count(OMITTED) + 1
