"""What every tool set shares: the run context it is built for, and its server name.

The MiroThinker weights know tools grouped by server; a LangChain tool carries
its server in ``metadata["mcp_server"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from mirograph.agents.mirothinker.tool_prompt import ToolSpec

SERVER_KEY = "mcp_server"
#: Metadata key on a tool: the argument names that identify a query (repeats roll back).
DEDUPE_KEY = "dedupe_args"


@dataclass(frozen=True)
class ToolContext:
    """The run a tool set is built for: tools that keep files use its workspace."""

    run_id: str
    workspace: Path


def on_server(tool: BaseTool, server: str) -> BaseTool:
    """Place ``tool`` on ``server`` unless it already names one."""
    metadata = dict(tool.metadata or {})
    metadata.setdefault(SERVER_KEY, server)
    tool.metadata = metadata
    return tool


def server_of(tool: BaseTool) -> str:
    return str((tool.metadata or {}).get(SERVER_KEY, "tools"))


def tool_specs(tools: Sequence[BaseTool]) -> list[ToolSpec]:
    """The tool list as the MiroThinker system prompt renders it."""
    specs = []
    for tool in tools:
        function = convert_to_openai_tool(tool)["function"]
        specs.append(
            ToolSpec(
                server=server_of(tool),
                name=tool.name,
                description=function.get("description", ""),
                schema=function.get("parameters", {"type": "object", "properties": {}}),
            )
        )
    return specs
