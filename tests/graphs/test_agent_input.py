"""An agent graph started without a question says so in one line (not a bare KeyError)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.loop_kit import make_loop, servers

server = pytest.fixture(servers)


@pytest.mark.parametrize(
    ("graph_input", "problem"),
    [
        ({"query": "What is it?"}, "the input has no 'question'"),
        ({"messages": [{"role": "user", "content": "What is it?"}]}, "the input has no 'question'"),
        ({"question": "  "}, "the input's 'question' is empty"),
        ({"question": 42}, "the input's 'question' is not text"),
    ],
)
async def test_an_input_without_a_question_is_one_clear_line(
    server: Any, tmp_path: Path, graph_input: dict[str, Any], problem: str
) -> None:
    srv = server(lambda body: "unused")
    loop = make_loop(srv, [])
    graph = loop.build().compile()
    try:
        with pytest.raises(ValueError) as error:
            await graph.ainvoke(graph_input)
    finally:
        await loop.aclose()
    assert str(error.value) == f"{problem}; pass {{'question': '...'}}"
    assert srv.requests == []
