"""Slips repaired before a call runs, over HTTP against sim-model: the tool gets
the repaired call, the stored reply and what the model is shown keep what it
wrote, and ``stats["slip_repairs"]`` counts each repair."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.messages.tool import ToolCall
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import create_model
from support.loop_kit import make_loop, run_loop, scripted, servers

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.tools.base import DEDUPE_KEY, ToolContext, on_server
from mirograph.agents.tools.tool_refs import resolve_tools
from mirograph.graphs.slips import SlipRepairs

ANSWER = "Done.</think>\n\n\\boxed{42}"
server = pytest.fixture(servers)


class Recorder:
    """Tools that record the arguments each call got."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []

    def tool(self, name: str, server: str, **params: type) -> BaseTool:
        """A tool ``name(**params)`` on ``server``; a param typed ``None`` is optional."""

        async def record(**args: Any) -> str:
            self.got.append((name, args))
            return f"{name} ran"

        fields = {
            key: (str, ...) if kind is str else (str | None, None) for key, kind in params.items()
        }
        schema = create_model(f"{name}Args", **fields)  # type: ignore[call-overload]
        made = StructuredTool.from_function(
            coroutine=record, name=name, description=f"The {name} tool.", args_schema=schema
        )
        return on_server(made, server)


def reply(server: str, tool: str, args: dict[str, Any]) -> str:
    return f"Working.</think>\n\nCalling {tool}.\n\n" + render_call(server, tool, args)


async def one_call(server, tmp_path, tools: list[BaseTool], written: str) -> dict[str, Any]:
    """Run a loop whose model writes ``written`` once, then answers; check that the
    stored reply and the next request keep ``written`` as the model wrote it."""
    replies = iter([written])
    srv = server(lambda body: next(replies, ANSWER))
    values = await run_loop(make_loop(srv, tools), tmp_path)
    stored = values["messages"][2]
    assert isinstance(stored, AIMessage) and stored.content == written
    assert srv.requests[1]["messages"][2] == {"role": "assistant", "content": written}
    return values


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


async def test_a_wrong_server_name_runs_the_tool_on_its_server(server, tmp_path, rec) -> None:
    tools = [rec.tool("google_search", "tool-google-search", q=str)]
    written = reply("tool-search", "google_search", {"q": "cats"})
    values = await one_call(server, tmp_path, tools, written)
    assert rec.got == [("google_search", {"q": "cats"})]
    assert values["stats"]["slip_repairs"] == 1
    assert values["messages"][3].content == "google_search ran"


async def test_python_runs_as_run_python_code(server, tmp_path, rec) -> None:
    tools = [rec.tool("run_python_code", "tool-python", code_block=str, sandbox_id=type(None))]
    written = reply("tool-python", "python", {"code_block": "1 + 1"})
    values = await one_call(server, tmp_path, tools, written)
    assert rec.got == [("run_python_code", {"code_block": "1 + 1", "sandbox_id": None})]
    assert values["messages"][2].tool_calls[0]["name"] == "python"  # as written
    assert values["stats"]["slip_repairs"] == 1


async def test_code_is_passed_as_code_block(server, tmp_path, rec) -> None:
    tools = [rec.tool("run_python_code", "tool-python", code_block=str, sandbox_id=type(None))]
    written = reply("tool-python", "run_python_code", {"code": "print(2)"})
    values = await one_call(server, tmp_path, tools, written)
    assert rec.got == [("run_python_code", {"code_block": "print(2)", "sandbox_id": None})]
    assert values["messages"][2].tool_calls[0]["args"] == {"code": "print(2)"}  # as written
    assert values["stats"]["slip_repairs"] == 1


async def test_description_is_passed_as_info_to_extract(server, tmp_path, rec) -> None:
    tools = [rec.tool("scrape_and_extract_info", "tool-scrape", url=str, info_to_extract=str)]
    args = {"url": "https://a.example", "description": "the date"}
    values = await one_call(server, tmp_path, tools, reply("tool-scrape", tools[0].name, args))
    want = {"url": "https://a.example", "info_to_extract": "the date"}
    assert rec.got == [("scrape_and_extract_info", want)]
    assert values["stats"]["slip_repairs"] == 1


async def test_a_missing_required_sandbox_id_is_the_default(server, tmp_path, rec) -> None:
    # An MCP python server (the reference's) requires a sandbox_id.
    tools = [rec.tool("run_python_code", "tool-python", code_block=str, sandbox_id=str)]
    written = reply("tool-python", "python", {"code": "x"})
    values = await one_call(server, tmp_path, tools, written)
    assert rec.got == [("run_python_code", {"code_block": "x", "sandbox_id": "default"})]
    assert values["stats"]["slip_repairs"] == 3  # the tool name, code, sandbox_id


async def test_a_call_without_slips_counts_none(server, tmp_path, rec) -> None:
    tools = [rec.tool("run_python_code", "tool-python", code_block=str, sandbox_id=type(None))]
    written = reply("tool-python", "run_python_code", {"code_block": "x"})
    values = await one_call(server, tmp_path, tools, written)
    assert rec.got == [("run_python_code", {"code_block": "x", "sandbox_id": None})]
    assert values["stats"]["slip_repairs"] == 0


def repaired(tools: list[BaseTool], name: str, args: dict[str, Any], server: str | None = None):
    return SlipRepairs(tools).repair(ToolCall(name=name, args=args, id="c1"), server)


def test_repairs_apply_only_where_unambiguous(rec) -> None:
    both = [rec.tool("run_python_code", "tool-python", code=str, code_block=str)]
    assert repaired(both, "run_python_code", {"code": "x"}).slips == ()  # `code` is its own
    given = [rec.tool("run_python_code", "tool-python", code_block=str)]
    kept = repaired(given, "run_python_code", {"code": "x", "code_block": "y"})
    assert kept.slips == () and kept.call["args"] == {"code": "x", "code_block": "y"}
    own = [rec.tool("python", "lab", code_block=str), *given]
    assert repaired(own, "python", {"code_block": "x"}, "lab").slips == ()  # a tool of its own
    unknown = repaired(given, "python_exec", {"code": "x"}, "elsewhere")
    assert unknown.slips == () and unknown.call["name"] == "python_exec"
    optional = [rec.tool("run_python_code", "tool-python", code_block=str, sandbox_id=type(None))]
    assert repaired(optional, "run_python_code", {"code_block": "x"}).slips == ()
    scrape = [rec.tool("scrape_and_extract_info", "s", url=str, info_to_extract=str)]
    intro = repaired(scrape, "scrape_and_extract_info", {"url": "u", "introduction": "i"})
    assert intro.call["args"] == {"url": "u", "info_to_extract": "i"}
    assert intro.slips == ("argument introduction -> info_to_extract",)


async def test_the_built_in_python_tools_run_python_with_code(server, tmp_path) -> None:
    """The python tool set lists no ``python`` alias and no ``code`` argument; the
    repairs keep such a call working, in the run's default sandbox."""
    ctx = ToolContext("r1", tmp_path / "workspace")
    tools = resolve_tools([{"python": {"timeout_s": 5, "memory_mb": 256}}], ctx)
    assert "python" not in {tool.name for tool in tools}
    written = reply("tool-python", "python", {"code": "print(6 * 7)"})
    try:
        values = await one_call(server, tmp_path, tools, written)
    finally:
        await ctx.aclose()
    assert values["messages"][3].content == "42\n"
    assert values["stats"]["slip_repairs"] == 2  # the tool name, code


async def test_repeated_queries_are_judged_on_the_repaired_call(server, tmp_path, rec) -> None:
    """Slipped scrapes of one page keep their distinct ``info_to_extract`` (the
    reference's duplicate key is read after its repairs): only a true repeat rolls back."""
    scrape = rec.tool("scrape_and_extract_info", "tool-scrape", url=str, info_to_extract=str)
    scrape.metadata = {**(scrape.metadata or {}), DEDUPE_KEY: ["url", "info_to_extract"]}
    written = [
        reply("tool-scrape", scrape.name, {"url": "https://a.example", "description": info})
        for info in ("the date", "the author", "the date")
    ]
    srv = server(scripted(written, ANSWER))
    values = await run_loop(make_loop(srv, [scrape]), tmp_path)
    infos = [args["info_to_extract"] for _, args in rec.got]
    assert infos == ["the date", "the author"]
    assert values["stats"]["rollbacks"] == 1  # the third call repeats the first
    assert values["stats"]["slip_repairs"] == 2
