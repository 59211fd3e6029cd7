"""A run's resources (cleanups at the run's end, resources kept per run by key), and
the tool list as the system prompt shows it (``tool_specs``)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, StructuredTool, Tool, tool
from pydantic import BaseModel, Field
from support import listed_mcp_server
from support.listed_mcp_server import FUNCTIONS, server

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker.tool_prompt import python_literal
from mirograph.agents.tools.base import RunResources, ToolContext, tool_specs
from mirograph.agents.tools.tool_refs import BUILTIN_SETS, parse_ref, resolve_tools


class Resource:
    """Something a tool set keeps for a run; records its closing."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        self.log.append(self.name)


def context(tmp_path: Path, run_id: str = "r1") -> ToolContext:
    return ToolContext(run_id, tmp_path)


async def test_cleanups_run_newest_first_and_each_even_if_one_fails() -> None:
    log: list[str] = []
    resources = RunResources()

    async def failing() -> None:
        log.append("failing")
        raise RuntimeError("cleanup failed")

    resources.close_later(Resource(log, "oldest"))
    resources.on_close(failing)
    resources.close_later(object())  # nothing to close: ignored
    resources.close_later(Resource(log, "newest"))

    await resources.aclose()
    assert log == ["newest", "failing", "oldest"]
    await resources.aclose()  # each cleanup runs once
    assert log == ["newest", "failing", "oldest"]


async def test_the_context_delegates_its_cleanups_to_the_run(tmp_path: Path) -> None:
    log: list[str] = []
    ctx = context(tmp_path)
    copy = replace(ctx, options={"a": 1})
    ctx.close_later(Resource(log, "first"))
    copy.close_later(Resource(log, "second"))

    assert copy.resources is ctx.resources
    await ctx.aclose()
    assert log == ["second", "first"]


async def test_a_keyed_resource_is_made_once_per_run_and_shared_by_copies(tmp_path: Path) -> None:
    log: list[str] = []
    made: list[Resource] = []

    def make() -> Resource:
        made.append(Resource(log, f"session {len(made) + 1}"))
        return made[-1]

    ctx = context(tmp_path)
    copy = replace(ctx, models={"m": object()})
    first = ctx.resources.get_or_create(("set", "server"), make)
    assert copy.resources.get_or_create(("set", "server"), make) is first
    other = ctx.resources.get_or_create(("set", "other"), make)
    assert other is not first and len(made) == 2

    await copy.aclose()
    assert first.closed and other.closed
    assert log == ["session 2", "session 1"]
    # After the run's end the key is free: a late use makes (and registers) a fresh one.
    late = ctx.resources.get_or_create(("set", "server"), make)
    assert late is not first and len(made) == 3
    await ctx.aclose()
    assert late.closed


async def test_two_runs_get_two_resources(tmp_path: Path) -> None:
    log: list[str] = []
    one, two = context(tmp_path, "r1"), context(tmp_path, "r2")
    mine = one.resources.get_or_create("key", lambda: Resource(log, "r1"))
    theirs = two.resources.get_or_create("key", lambda: Resource(log, "r2"))
    assert mine is not theirs

    await one.aclose()
    assert mine.closed and not theirs.closed
    await two.aclose()
    assert log == ["r1", "r2"]


# -- the tool list: as FastMCP lists a typed Python function ---------------------------------


async def fastmcp_listing() -> dict[str, tuple[str, str]]:
    """Each tool of the test server as FastMCP lists it: description and schema literal."""
    return {
        t.name: (t.description or "", python_literal(t.inputSchema))
        for t in await server.list_tools()
    }


def listing(tools: list[BaseTool]) -> dict[str, tuple[str, str]]:
    return {s.name: (s.description, python_literal(s.schema)) for s in tool_specs(tools)}


def as_tool(function: Callable[..., Any], **kwargs: Any) -> BaseTool:
    if inspect.iscoroutinefunction(function):
        return StructuredTool.from_function(coroutine=function, **kwargs)
    return StructuredTool.from_function(func=function, **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda f: as_tool(f),
        lambda f: as_tool(f, parse_docstring=True),  # argument descriptions from the Args
        lambda f: tool(f),
    ],
    ids=["from_function", "parse_docstring", "tool_decorator"],
)
async def test_a_function_tool_is_listed_exactly_as_fastmcp_lists_the_function(
    make: Callable[[Callable[..., Any]], BaseTool],
) -> None:
    expected = await fastmcp_listing()
    assert listing([make(f) for f in FUNCTIONS]) == expected
    description, schema = expected["google_search"]
    assert "    Args:\n        q: The search query." in description  # the full docstring
    assert "    Returns:\n        The results as a JSON string.\n    " in description
    assert schema.startswith("{'properties': {'q': {'title': 'Q', 'type': 'string'}, 'gl': ")
    assert schema.endswith(
        "'required': ['q'], 'title': 'google_searchArguments', 'type': 'object'}"
    )


async def test_a_nested_function_is_listed_as_if_defined_at_the_top_level() -> None:
    def ping() -> str:
        """Answer pong."""
        return "pong"

    def scrape_and_extract_info(url: str, info_to_extract: str) -> str:
        """Fetch a page and extract the requested information.

        Args:
            url: The http(s) URL of the page.
            info_to_extract: What to look for on the page.
        """
        return url

    listed = listing([as_tool(ping), as_tool(scrape_and_extract_info, parse_docstring=True)])
    expected = await fastmcp_listing()
    assert listed == {name: expected[name] for name in listed}


class LookupArgs(BaseModel):
    """Arguments of a lookup (a model's docstring is not the tool's description)."""

    key: str = Field(description="The word to look up.")
    limit: int = Field(default=3, ge=1, description="How many senses.")


def test_an_explicit_description_and_pydantic_schema_keep_their_own_text() -> None:
    async def lookup(key: str, limit: int = 3) -> str:
        """Not shown: the tool has a description of its own."""
        return key

    made = StructuredTool.from_function(
        coroutine=lookup, name="define", description="Define a word.", args_schema=LookupArgs
    )
    [spec] = tool_specs([made])
    assert spec.description == "Define a word."
    assert python_literal(spec.schema) == (
        "{'properties': {'key': {'description': 'The word to look up.', 'title': 'Key',"
        " 'type': 'string'}, 'limit': {'default': 3, 'description': 'How many senses.',"
        " 'minimum': 1, 'title': 'Limit', 'type': 'integer'}}, 'required': ['key'],"
        " 'title': 'defineArguments', 'type': 'object'}"
    )


def test_a_one_string_tool_is_listed_with_its_one_argument_titled() -> None:
    [spec] = tool_specs([Tool(name="calc", func=str.upper, description="Calculate.")])
    assert python_literal(spec.schema) == (
        "{'properties': {'__arg1': {'title': '__arg1', 'type': 'string'}},"
        " 'required': ['__arg1'], 'title': 'calcArguments', 'type': 'object'}"
    )


def test_a_schema_given_as_a_dict_is_the_servers_own_and_stays_untouched() -> None:
    # langchain-mcp-adapters' tools carry the server's inputSchema as a dict, like ours.
    own = {
        "type": "object",
        "properties": {"q": {"type": "string", "minLength": 1}},
        "required": ["q"],
        "additionalProperties": False,
    }

    async def call(**arguments: Any) -> str:
        return ""

    adapted = StructuredTool(
        name="search", description="Search.\n  Indented.\n", args_schema=own, coroutine=call
    )
    [spec] = tool_specs([adapted])
    assert (spec.description, python_literal(spec.schema)) == (
        "Search.\n  Indented.\n",
        python_literal(own),
    )


async def test_an_mcp_servers_tools_keep_the_servers_own_listing(tmp_path: Path) -> None:
    command = [sys.executable, listed_mcp_server.__file__]
    tools = resolve_tools([{"mcp": {"name": "listed", "command": command}}], context(tmp_path))
    assert listing(tools) == await fastmcp_listing()


async def test_every_built_in_tool_is_listed_with_args_and_returns(tmp_path: Path) -> None:
    # As the MCP servers the weights were trained with list theirs: the docstring's Args
    # (when the tool takes any) and Returns sections, and the closing quotes' line.
    (tmp_path / "corpus").mkdir()
    refs: list[Any] = ["search", "scrape", "files", "python"]
    refs += [{"local": {"path": str(tmp_path / "corpus")}}, {"reasoning": {"model": "m"}}]
    assert {parse_ref(ref).name for ref in refs} == set(BUILTIN_SETS) - {
        "mcp"
    }  # mcp: a server's own
    ctx = ToolContext("r1", tmp_path, models={"m": ModelConfig(base_url="http://127.0.0.1:9")})
    specs = tool_specs(resolve_tools(refs, ctx))
    assert len(specs) == 12
    for spec in specs:
        has_args = bool(spec.schema["properties"])
        assert ("\n\n    Args:\n        " in spec.description) == has_args, spec.name
        assert "\n\n    Returns:\n        " in spec.description, spec.name
        assert spec.description.endswith(".\n    "), spec.name
    await ctx.aclose()
