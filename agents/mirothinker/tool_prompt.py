"""Render the tool part of MiroThinker's system prompt.

The weights were trained on a fixed layout: a formatting section, a lead line,
then the tools grouped by server, each as three lines with the input schema
written as a Python dict literal. The wording is ours; the layout is the
protocol's (measured against the reference agent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call

__all__ = ["TOOLS_LEAD", "ToolSpec", "python_literal", "render_tool_section"]


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the model sees it in the system prompt: as its MCP server lists it."""

    server: str
    name: str
    description: str
    schema: dict[str, Any]


_EXAMPLE_CALL = render_call(
    "example_server",
    "example_tool",
    {"query": "the text to look for", "limit": 5},
)

_FORMAT_SECTION = f"""# Tool-Use Formatting Instructions

To call a tool, write an XML-style block with these tags, in this order:

- `<use_mcp_tool>` opens the call and `</use_mcp_tool>` closes it.
- `<server_name>` holds the name of the server that provides the tool.
- `<tool_name>` holds the name of the tool.
- `<arguments>` holds the tool's input as one JSON object that matches the
  tool's input schema.

Put the call at the END of your message, at the top level (not inside a code
block or quotation), and make at most one call per message. The call is read
with regular expressions, so write the tags exactly as shown and use valid
JSON. The result of the call arrives in the next user message.

Example:

{_EXAMPLE_CALL}

When you need no tool, answer without any of these tags."""

#: Introduces the list, as the reference's "Here are the functions available..." does.
TOOLS_LEAD = "Here are the tools available to you, grouped by server, each with its input schema:"


def python_literal(schema: dict[str, Any]) -> str:
    """The schema as a Python dict literal, the form seen during training."""
    return repr(schema)


def render_tool_section(tools: Sequence[ToolSpec]) -> str:
    """Formatting instructions plus the tool list; "" when there are no tools.

    The list is laid out as the reference agent lays it out: a blank line before
    each server's block, single newlines inside it.
    """
    if not tools:
        return ""
    servers = _group_by_server(tools)
    blocks = [_render_server(server, specs) for server, specs in servers.items()]
    return "\n\n".join([_FORMAT_SECTION, TOOLS_LEAD, *blocks])


def _group_by_server(tools: Sequence[ToolSpec]) -> dict[str, list[ToolSpec]]:
    """Group tools by server, keeping first-appearance order of both."""
    servers: dict[str, list[ToolSpec]] = {}
    for tool in tools:
        servers.setdefault(tool.server, []).append(tool)
    return servers


def _render_server(server: str, tools: list[ToolSpec]) -> str:
    """One server heading followed by its tools, a line each."""
    return "\n".join([f"## Server name: {server}", *map(_render_tool, tools)])


def _render_tool(tool: ToolSpec) -> str:
    """The three lines that describe one tool; the description exactly as listed (a
    docstring keeps its indentation and trailing blanks, as an MCP server lists it)."""
    return (
        f"### Tool name: {tool.name}\n"
        f"Description: {tool.description}\n"
        f"Input JSON schema: {python_literal(tool.schema)}"
    )
