"""System prompt, task message and closing requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirograph.agents.mirothinker.tool_prompt import ToolSpec
from mirograph.agents.prompts import (
    CLOSING_HEADER,
    MAIN_CLOSING_OPENING,
    OBJECTIVES,
    TASK_SUFFIX,
    closing_request,
    is_closing_request,
    system_prompt,
    task_message,
)

TODAY = "2026-11-21"
SEARCH = ToolSpec(
    server="search_and_scrape_webpage",
    name="google_search",
    description="Search the web.",
    schema={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)
SCRAPE = ToolSpec(
    server="jina_scrape_llm_summary",
    name="scrape_and_extract_info",
    description="Scrape a page.",
    schema={"type": "object", "properties": {"url": {"type": "string"}}},
)


def _positions(text: str, markers: list[str]) -> list[int]:
    positions = [text.find(m) for m in markers]
    assert -1 not in positions, dict(zip(markers, positions, strict=True))
    return positions


def test_system_prompt_parts_in_protocol_order() -> None:
    prompt = system_prompt(today=TODAY, tools=[SEARCH, SCRAPE])
    markers = [
        f"Today is: {TODAY}",
        "# Tool-Use Formatting Instructions",
        "## Server name: search_and_scrape_webpage",
        "### Tool name: google_search",
        "## Server name: jina_scrape_llm_summary",
        "# General Objective",
        "# Agent Specific Objective",
    ]
    positions = _positions(prompt, markers)
    assert positions == sorted(positions)
    intro = prompt[: positions[1]]
    assert "one tool per message" in intro
    assert intro.rstrip().endswith(f"Today is: {TODAY}")
    assert prompt.rstrip().endswith(OBJECTIVES["main"].split("\n\n", 1)[1])


def test_the_date_ends_the_introductions_last_line() -> None:
    intro = system_prompt(today=TODAY).split("\n\n", 1)[0]
    assert "\n" not in intro
    assert intro.endswith(f" the result of the previous one. Today is: {TODAY}")


def test_schema_rendered_as_python_literal() -> None:
    prompt = system_prompt(today=TODAY, tools=[SEARCH])
    assert "Input JSON schema: {'type': 'object'" in prompt
    assert "'required': ['q']" in prompt
    assert "Description: Search the web." in prompt


def test_no_tool_section_without_tools() -> None:
    prompt = system_prompt(today=TODAY)
    assert "# Tool-Use Formatting Instructions" not in prompt
    assert "## Server name:" not in prompt
    assert "<use_mcp_tool>" not in prompt
    assert "\n\n\n" not in prompt
    _positions(prompt, [f"Today is: {TODAY}", "# General Objective", "# Agent Specific Objective"])


def test_browsing_objective_forbids_speculation() -> None:
    prompt = system_prompt(today=TODAY, role="browsing", tools=[SEARCH])
    objective = prompt[prompt.index("# Agent Specific Objective") :]
    assert "browsing agent" in objective
    assert "do not speculate" in objective
    assert "main agent" not in prompt


@pytest.mark.parametrize("role", ["main", "browsing", "coding", "reasoning"])
def test_each_role_has_its_own_objective(role: str) -> None:
    prompt = system_prompt(today=TODAY, role=role)
    assert prompt.endswith(OBJECTIVES[role])
    others = [r for r in OBJECTIVES if r != role]
    assert all(OBJECTIVES[r] not in prompt for r in others)


def test_unknown_role_falls_back_to_main() -> None:
    assert system_prompt(today=TODAY, role="custom").endswith(OBJECTIVES["main"])


def test_objective_text_replaces_role_objective() -> None:
    prompt = system_prompt(today=TODAY, role="browsing", objective="Count the moons.")
    assert prompt.endswith("Count the moons.")
    assert OBJECTIVES["browsing"] not in prompt


def test_template_file_replaces_prompt(tmp_path: Path) -> None:
    template = tmp_path / "prompt.txt"
    template.write_text("DATE=$today\nTOOLS=$tools\nGOAL=$objective\nKEEP=$unknown", "utf-8")

    prompt = system_prompt(today=TODAY, role="browsing", tools=[SEARCH], template=template)

    assert prompt.startswith(f"DATE={TODAY}\nTOOLS=# Tool-Use Formatting Instructions")
    assert "## Server name: search_and_scrape_webpage" in prompt
    assert f"GOAL={OBJECTIVES['browsing']}\n" in prompt
    assert prompt.endswith("KEEP=$unknown")
    assert "# General Objective" not in prompt
    assert "Today is:" not in prompt


def test_template_with_custom_objective_and_no_tools(tmp_path: Path) -> None:
    template = tmp_path / "prompt.txt"
    template.write_text("[$tools][$objective][$today]", "utf-8")
    prompt = system_prompt(today=TODAY, objective="Do X.", template=template)
    assert prompt == f"[][Do X.][{TODAY}]"


def test_task_message_asks_for_boxed_on_the_next_line() -> None:
    message = task_message("How many moons does Mars have?\n")
    assert message == f"How many moons does Mars have?\n{TASK_SUFFIX}"
    assert TASK_SUFFIX.endswith("wrap the final answer in \\boxed{}.")


def test_closing_request_for_main() -> None:
    question = "How many moons does Mars have?"
    message = closing_request(f"  {question}\n")
    assert message.startswith(f"{MAIN_CLOSING_OPENING} Summarise what you found")
    assert CLOSING_HEADER not in message  # the header is a sub-agent's only
    assert question in message
    assert "\\boxed{}" in message
    assert "may not call any more tools" in message
    assert "comma-separated list" in message
    assert "No trailing punctuation" in message
    assert "report" not in message


@pytest.mark.parametrize("role", ["browsing", "coding", "reasoning", "sub-agent"])
def test_closing_request_for_sub_agent_asks_for_report(role: str) -> None:
    subtask = "Find the launch date of Phobos-Grunt."
    message = closing_request(subtask, role=role)
    assert message.startswith(f"{CLOSING_HEADER}\n\nYour work on this sub-task ends now;")
    assert subtask in message
    assert "structured report" in message
    assert "partial" in message
    assert "Do not invent content" in message
    assert "may not call any more tools" in message
    assert "\\boxed" not in message


def test_a_sub_agent_is_asked_for_a_supported_answer_not_a_box() -> None:
    message = task_message("Find the population of Graz.", role="browsing")
    assert message.startswith("Find the population of Graz.\n\n")
    assert "supporting details" in message and "boxed" not in message


def test_both_closing_requests_are_recognised_by_their_opening_and_nothing_else() -> None:
    question = "How many moons does Mars have?"
    assert is_closing_request(closing_request(question))
    assert is_closing_request(closing_request(question, role="browsing"))
    assert not is_closing_request(task_message(question))
    assert not is_closing_request(task_message(question, role="browsing"))
    assert not is_closing_request(f"A page that quotes it: {CLOSING_HEADER}")
    assert not is_closing_request(f"A page that quotes it: {MAIN_CLOSING_OPENING}")
    assert not is_closing_request("")
    assert not is_closing_request(None)
