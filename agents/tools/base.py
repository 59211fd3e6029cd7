"""What every tool set shares: the run context it is built for, and its server name.

The MiroThinker weights know tools grouped by server; a LangChain tool carries
its server in ``metadata["mcp_server"]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from mirograph.agents.mirothinker.tool_prompt import ToolSpec

SERVER_KEY = "mcp_server"
#: Metadata key on a tool: the argument names that identify a query (repeats roll back).
DEDUPE_KEY = "dedupe_args"


Closer = Callable[[], Awaitable[None]]
T = TypeVar("T")


class RunResources:
    """What a run holds until it ends: its cleanups, and resources its tool sets share.

    One per run: every copy of the run's ``ToolContext`` (one per tool set,
    made with ``dataclasses.replace``) holds the same object, so a resource kept
    here by key (an MCP session, say) is shared by every agent of the run and
    by no other run, and ends with the run (``aclose``).
    """

    def __init__(self) -> None:
        self._closers: list[Closer] = []
        self._by_key: dict[Hashable, Any] = {}

    def on_close(self, closer: Closer) -> None:
        self._closers.append(closer)

    def close_later(self, resource: Any) -> None:
        """Close ``resource`` (anything with an async ``aclose``) when the run ends."""
        aclose = getattr(resource, "aclose", None)
        if aclose is not None:
            self.on_close(aclose)

    def get_or_create(self, key: Hashable, factory: Callable[[], T]) -> T:
        """The run's resource under ``key``, made by ``factory`` on first use.

        Its ``aclose`` (if it has one) runs when the run ends; from then on the
        key is free again, so a use after the end makes a fresh one.
        """
        if key in self._by_key:
            return cast(T, self._by_key[key])
        resource = factory()
        self._by_key[key] = resource

        async def close() -> None:
            if self._by_key.get(key) is resource:
                del self._by_key[key]
            aclose = getattr(resource, "aclose", None)
            if aclose is not None:
                await aclose()

        self.on_close(close)
        return resource

    async def aclose(self) -> None:
        """Run the registered cleanups, newest first; each runs even if one fails."""
        while self._closers:
            closer = self._closers.pop()
            try:
                await closer()
            except Exception:  # cleanup must not mask the run's outcome
                continue


@dataclass(frozen=True)
class ToolContext:
    """The run a tool set is built for.

    Tools that keep files use ``workspace``; a set with settings gets its
    validated options model in ``options``; ``models`` are the flow's model
    endpoints (for tools that ask a model, e.g. reasoning or extraction).
    ``resources`` is the run's scope, shared by every copy of the context: a
    tool holding a connection or a process registers its cleanup there
    (``on_close``, ``close_later``); the run calls ``aclose`` when it ends.
    """

    run_id: str
    workspace: Path
    options: Any = None
    models: Mapping[str, Any] = field(default_factory=dict)
    resources: RunResources = field(default_factory=RunResources)

    def on_close(self, closer: Closer) -> None:
        self.resources.on_close(closer)

    def close_later(self, resource: Any) -> None:
        """Close ``resource`` (anything with an async ``aclose``) when the run ends."""
        self.resources.close_later(resource)

    async def aclose(self) -> None:
        """End the run's resources (see ``RunResources.aclose``)."""
        await self.resources.aclose()


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
