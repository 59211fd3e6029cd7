"""``reasoning(question)`` over real HTTP, and tool options checked when a flow is validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import ToolException

from mirograph.agents.config import ModelConfig
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import ToolContext, server_of
from mirograph.agents.tools.reasoning import SYSTEM
from mirograph.agents.tools.tool_refs import resolve_tools
from mirograph.flows.loader import FlowError, validate_flow


def ctx(tmp_path: Path, base_url: str) -> ToolContext:
    return ToolContext("r1", tmp_path, models={"reasoner": ModelConfig(base_url=base_url)})


async def test_the_reasoning_model_answers_the_question_alone(tmp_path: Path) -> None:
    def policy(body: dict[str, Any]) -> str:
        return "Let me add them: 5 + 7 = 12.</think>\n\nThe sum is 12."

    with SimServer(policy) as srv:
        context = ctx(tmp_path, srv.base_url)
        [tool] = resolve_tools([{"reasoning": {"model": "reasoner", "max_tokens": 300}}], context)
        answer = await tool.ainvoke({"question": "What is 5 + 7?"})
        await context.aclose()
    assert answer == "The sum is 12."  # thinking removed
    assert (tool.name, server_of(tool)) == ("reasoning", "tool-reasoning")
    [request] = srv.requests
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert request["messages"][0]["content"] == SYSTEM
    assert request["messages"][1]["content"] == "What is 5 + 7?"
    assert "tools" not in request and request["max_tokens"] == 300


async def test_a_failing_reasoning_model_is_a_tool_error(tmp_path: Path) -> None:
    with SimServer(lambda body: Fault(503, "overloaded")) as srv:
        context = ctx(tmp_path, srv.base_url)
        [tool] = resolve_tools([{"reasoning": {"model": "reasoner"}}], context)
        with pytest.raises(ToolException, match=r"the reasoning model failed: .*HTTP 503"):
            await tool.ainvoke({"question": "Why?"})
        await context.aclose()


def flow(tools: list[Any]) -> dict[str, Any]:
    return {
        "name": "x",
        "models": {"m": {}, "reasoner": {}},
        "agents": {"main": {"model": "m", "tools": tools}},
        "entry": "main",
    }


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        (["reasoning"], "agents.main.tools[0]: reasoning.model: required option is missing"),
        (
            [{"reasoning": {"model": "nope"}}],
            "agents.main.tools[0].reasoning.model: unknown model 'nope'; defined models: m,"
            " reasoner",
        ),
        (
            [{"reasoning": {"model": "reasoner", "temp": 1}}],
            "agents.main.tools[0]: reasoning.temp: unknown option; reasoning takes: model,"
            " max_tokens",
        ),
        ([{"files": {"root": "/"}}], "agents.main.tools[0]: tool set 'files' takes no options"),
        ([{"a": {}, "b": {}}], "agents.main.tools[0]: a tool is a name or a one-key mapping"),
    ],
)
def test_tool_options_are_checked_before_anything_runs(tools: list[Any], expected: str) -> None:
    with pytest.raises(FlowError) as err:
        validate_flow(flow(tools), source="f.yaml")
    assert str(err.value).startswith(f"f.yaml: {expected}")
    assert "\n" not in str(err.value)


def test_options_are_stored_complete_for_resume() -> None:
    validated = validate_flow(flow([{"reasoning": {"model": "reasoner"}}]))
    assert validated.agents["main"].tools == [
        {"reasoning": {"model": "reasoner", "max_tokens": 16384}}
    ]
