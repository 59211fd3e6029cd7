"""What every tool set shares: the run context it is built for, and its server name.

The MiroThinker weights know tools grouped by server; a LangChain tool carries
its server in ``metadata["mcp_server"]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from mirograph.agents.mirothinker.tool_prompt import ToolSpec

SERVER_KEY = "mcp_server"
#: Metadata key on a tool: the argument names that identify a query (repeats roll back).
DEDUPE_KEY = "dedupe_args"


Closer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ToolContext:
    """The run a tool set is built for.

    Tools that keep files use ``workspace``; a set with settings gets its
    validated options model in ``options``; ``models`` are the flow's model
    endpoints (for tools that ask a model, e.g. reasoning or extraction).
    A tool holding a connection or a process registers its cleanup with
    ``on_close``; the run calls them when it ends.
    """

    run_id: str
    workspace: Path
    options: Any = None
    models: Mapping[str, Any] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)

    def on_close(self, closer: Closer) -> None:
        self.closers.append(closer)

    def close_later(self, resource: Any) -> None:
        """Close ``resource`` (anything with an async ``aclose``) when the run ends."""
        aclose = getattr(resource, "aclose", None)
        if aclose is not None:
            self.on_close(aclose)

    async def aclose(self) -> None:
        """Run the registered cleanups, newest first; each runs even if one fails."""
        while self.closers:
            closer = self.closers.pop()
            try:
                await closer()
            except Exception:  # cleanup must not mask the run's outcome
                continue


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
