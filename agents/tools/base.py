"""What every tool set shares: the run context it is built for, and its server name.

The MiroThinker weights know tools grouped by server; a LangChain tool carries
its server in ``metadata["mcp_server"]``.
"""

from __future__ import annotations

import copy
import inspect
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from langchain_core.tools import BaseTool, create_schema_from_function
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
    """The tool list as the MiroThinker system prompt renders it: each tool as an MCP
    server lists it (for a tool made from a Python function, as FastMCP lists that
    function), the form the weights were trained on."""
    return [
        ToolSpec(
            server=server_of(tool),
            name=tool.name,
            description=listed_description(tool),
            schema=listed_schema(tool),
        )
        for tool in tools
    ]


def listed_description(tool: BaseTool) -> str:
    """The tool's description; for one made from a function, its full docstring (Args
    and Returns included, which LangChain may cut), as FastMCP lists it."""
    doc = getattr(_function_of(tool), "__doc__", None)
    if doc and tool.description.strip() and _words(doc).startswith(_words(tool.description)):
        return module_level_docstring(doc)
    return tool.description


def module_level_docstring(doc: str) -> str:
    """``doc`` as the raw ``__doc__`` of a function defined at a module's top level,
    which FastMCP lists as is: later lines indented by four spaces, the closing
    quotes' line kept. Our tools are closures, nested deeper; the MCP servers the
    weights were trained with define theirs at the top level."""
    lines = inspect.cleandoc(doc).splitlines()
    opens_on_first_line = bool(doc.split("\n", 1)[0].strip())
    head, tail = (lines[0], lines[1:]) if opens_on_first_line else ("", lines)
    body = "".join(f"\n    {line}" if line.strip() else "\n" for line in tail)
    closing = "\n    " if "\n" in doc and not doc.rsplit("\n", 1)[1].strip() else ""
    return head + body + closing


def documented(summary: str, args: Mapping[str, str], returns: str) -> str:
    """A description with ``Args`` and ``Returns`` sections (``Args`` only when there
    are arguments), laid out as ``module_level_docstring`` lists a docstring: for a
    tool whose description is not its function's docstring (one made at run time, a
    sub-agent), so it reads like the docstrings of the other tools."""
    lines = [summary, ""]
    if args:
        lines += ["Args:", *(f"    {name}: {text}" for name, text in args.items()), ""]
    lines += ["Returns:", f"    {returns}", ""]
    return module_level_docstring("\n".join(lines))


def with_description(tool: BaseTool, description: str) -> BaseTool:
    """``tool`` with ``description`` exactly: LangChain strips a description it is given,
    which would drop a ``documented`` text's last line (the closing quotes' line)."""
    tool.description = description
    return tool


def listed_schema(tool: BaseTool) -> dict[str, Any]:
    """The tool's input schema with its ``title`` keys, as FastMCP makes it.

    A schema given as a dict (a tool from an MCP server) is the server's own and
    stays untouched. A pydantic one is the model's JSON schema, titled
    ``<tool>Arguments`` without a description (the tool's description has it);
    argument descriptions that LangChain copied from the docstring's Args section are
    dropped, as FastMCP has them only in the description. (``convert_to_openai_tool``
    strips the titles: only a tool without a schema goes through it.)
    """
    if isinstance(tool.args_schema, dict):
        return tool.args_schema
    if tool.args_schema is None:  # a one-string tool (``Tool``): as LangChain offers it
        parameters = convert_to_openai_tool(tool)["function"]["parameters"]
        return dict(sorted({**parameters, "title": f"{tool.name}Arguments"}.items()))
    key = (tool.name, type(tool), _function_of(tool))
    try:
        known = _LISTED.setdefault(tool.args_schema, {})
    except TypeError:  # a model that cannot be weakly referenced: not remembered
        known = {}
    if key not in known:
        known[key] = _pydantic_schema(tool)
    return copy.deepcopy(known[key])


#: Listed schemas by argument model (kept while the model lives), then tool name, type
#: and function. Making one parses the function's docstring and builds two pydantic
#: models (~10 ms); every run asked three times (prompt, slip repairs, the size check)
#: for the same tools (``tool_refs`` makes a function's tool once per process).
_LISTED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _pydantic_schema(tool: BaseTool) -> dict[str, Any]:
    schema = _json_schema(tool.tool_call_schema)
    schema.pop("description", None)
    schema["title"] = f"{tool.name}Arguments"
    if _args_from_docstring(tool):
        for field in schema.get("properties", {}).values():
            field.pop("description", None)
    return schema


def _function_of(tool: BaseTool) -> Callable[..., Any] | None:
    return getattr(tool, "func", None) or getattr(tool, "coroutine", None)


def _words(text: str) -> str:
    return " ".join(text.split())


def _json_schema(model: Any) -> dict[str, Any]:
    if isinstance(model, dict):
        return dict(model)
    if hasattr(model, "model_json_schema"):
        return cast(dict[str, Any], model.model_json_schema())
    return cast(dict[str, Any], model.schema())  # a pydantic.v1 model


def _args_from_docstring(tool: BaseTool) -> bool:
    """Whether LangChain inferred the schema from the tool's function with
    ``parse_docstring`` (argument descriptions copied from its Args section)."""
    function = _function_of(tool)
    if function is None or not isinstance(tool.args_schema, type):
        return False
    try:
        parsed = create_schema_from_function(tool.name, function, parse_docstring=True)
    except Exception:  # not a signature LangChain can infer from: not inferred
        return False
    inferred, own = _json_schema(parsed), _json_schema(tool.args_schema)
    inferred.pop("description", None)
    own.pop("description", None)
    return inferred == own
