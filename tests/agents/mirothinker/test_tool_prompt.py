"""Tests for the tool part of MiroThinker's system prompt."""

from __future__ import annotations

from mirograph.agents.mirothinker.parsing import parse_reply, render_call
from mirograph.agents.mirothinker.tool_prompt import (
    TOOLS_LEAD,
    ToolSpec,
    python_literal,
    render_tool_section,
)

SEARCH_SCHEMA = {
    "type": "object",
    "properties": {"q": {"type": "string"}, "num": {"type": "integer", "default": 10}},
    "required": ["q"],
    "additionalProperties": False,
}

TOOLS = [
    ToolSpec("search_and_scrape_webpage", "google_search", "Search the web.", SEARCH_SCHEMA),
    ToolSpec("tool-python", "create_sandbox", "Create a sandbox.", {"type": "object"}),
    ToolSpec("search_and_scrape_webpage", "scrape", "Scrape a page.", {"nullable": None}),
    ToolSpec("tool-python", "run_python_code", "Run code.", {"strict": True}),
]


def test_python_literal_uses_python_syntax() -> None:
    literal = python_literal(SEARCH_SCHEMA)
    assert literal.startswith("{'type': 'object', ")
    assert "'additionalProperties': False" in literal
    assert '"' not in literal
    assert "false" not in literal
    assert python_literal({"a": True, "b": None}) == "{'a': True, 'b': None}"


def test_empty_tool_list_gives_empty_text() -> None:
    assert render_tool_section([]) == ""


def test_starts_with_formatting_section() -> None:
    text = render_tool_section(TOOLS)
    assert text.startswith("# Tool-Use Formatting Instructions\n")
    for tag in ("<use_mcp_tool>", "<server_name>", "<tool_name>", "<arguments>"):
        assert tag in text
    assert "END" in text
    assert "regular expressions" in text


def test_usage_example_is_a_parsable_call() -> None:
    head = render_tool_section(TOOLS).split("## Server name:")[0]
    reply = parse_reply(head)
    assert len(reply.calls) == 1
    call = reply.calls[0]
    assert render_call(call.server, call.tool, call.arguments) in head


def test_servers_grouped_in_first_appearance_order() -> None:
    lines = render_tool_section(TOOLS).splitlines()
    headings = [line for line in lines if line.startswith("## ") or line.startswith("### ")]
    assert headings == [
        "## Server name: search_and_scrape_webpage",
        "### Tool name: google_search",
        "### Tool name: scrape",
        "## Server name: tool-python",
        "### Tool name: create_sandbox",
        "### Tool name: run_python_code",
    ]


def test_each_tool_is_exactly_three_lines() -> None:
    text = render_tool_section(TOOLS)
    expected = (
        "### Tool name: google_search\n"
        "Description: Search the web.\n"
        f"Input JSON schema: {python_literal(SEARCH_SCHEMA)}\n"
    )
    assert expected in text
    assert "### Tool name: scrape\nDescription: Scrape a page.\n" in text
    assert "Input JSON schema: {'nullable': None}" in text
    assert text.endswith(
        "### Tool name: run_python_code\n"
        "Description: Run code.\n"
        "Input JSON schema: {'strict': True}"
    )


def test_tool_list_follows_formatting_section() -> None:
    text = render_tool_section(TOOLS)
    assert text.index("# Tool-Use Formatting Instructions") < text.index("## Server name:")
    assert text.count("## Server name:") == 2
    assert text.count("### Tool name:") == 4


def test_the_list_is_led_by_a_line_then_one_block_per_server_in_single_lines() -> None:
    """As the reference lays it out: each server's block after a blank line, and
    inside it the heading and each tool's three lines one per line."""
    text = render_tool_section(TOOLS)
    assert text.split(f"\n\n{TOOLS_LEAD}\n\n", 1)[1] == (
        "## Server name: search_and_scrape_webpage\n"
        "### Tool name: google_search\n"
        "Description: Search the web.\n"
        f"Input JSON schema: {python_literal(SEARCH_SCHEMA)}\n"
        "### Tool name: scrape\n"
        "Description: Scrape a page.\n"
        "Input JSON schema: {'nullable': None}\n"
        "\n"
        "## Server name: tool-python\n"
        "### Tool name: create_sandbox\n"
        "Description: Create a sandbox.\n"
        "Input JSON schema: {'type': 'object'}\n"
        "### Tool name: run_python_code\n"
        "Description: Run code.\n"
        "Input JSON schema: {'strict': True}"
    )


def test_a_description_is_shown_exactly_as_listed() -> None:
    doc = "Search the web.\n\n    Args:\n        q: The query.\n    "
    text = render_tool_section([ToolSpec("s", "search", doc, {"type": "object"})])
    assert f"### Tool name: search\nDescription: {doc}\nInput JSON schema: " in text
