"""The ``mcp`` tool set against a real stdio MCP server (``mcp_server_demo.py``).

Also over streamable HTTP (the same server in-process), and end to end: an
agent driven by the simulated model calls a server's tool.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from langchain_core.tools import BaseTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.sim.server import NotifyingServer, SimServer
from mirograph.agents.tools import mcp
from mirograph.agents.tools.base import ToolContext, server_of, tool_specs
from mirograph.agents.tools.tool_refs import ToolRefError, check_ref, resolve_tools
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import start_run

DEMO = Path(__file__).with_name("mcp_server_demo.py")
COMMAND = [sys.executable, str(DEMO)]


def demo(**options: Any) -> dict[str, Any]:
    """A flow's ``mcp`` entry for the demo server."""
    return {"mcp": {"name": "demo", "command": COMMAND, **options}}


def context(tmp_path: Path) -> ToolContext:
    return ToolContext(run_id="r1", workspace=tmp_path)


def by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {t.name: t for t in tools}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_tools_are_listed_with_their_schemas_under_the_server_name(tmp_path: Path) -> None:
    # Built from inside a running event loop, as the runner builds graphs.
    asyncio.get_running_loop()
    tools = resolve_tools([demo()], context(tmp_path))

    assert [t.name for t in tools] == ["add", "lookup", "pid", "has_secret", "wait"]
    assert {server_of(t) for t in tools} == {"demo"}
    add = convert_to_openai_tool(tools[0])["function"]
    assert add["description"] == "Add two integers."
    assert add["parameters"] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    [spec] = [s for s in tool_specs(tools) if s.name == "lookup"]
    assert (spec.server, spec.schema["required"]) == ("demo", ["key"])


async def test_calls_share_one_session_per_run_which_closing_the_run_ends(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    tools = by_name(resolve_tools([demo()], ctx))
    # A second agent of the same run listing the same server shares its session.
    other = by_name(resolve_tools([demo()], replace(ctx, models={})))

    assert await tools["add"].ainvoke({"a": 2, "b": 3}) == "5"
    pids = await asyncio.gather(
        tools["pid"].ainvoke({}), tools["pid"].ainvoke({}), other["pid"].ainvoke({})
    )
    assert len(set(pids)) == 1
    pid = int(pids[0])
    assert pid != os.getpid() and not gone(pid)

    await ctx.aclose()
    assert gone(pid)


async def test_each_run_has_its_own_session_which_its_end_closes(tmp_path: Path) -> None:
    first, second = context(tmp_path), ToolContext(run_id="r2", workspace=tmp_path)
    ones = by_name(resolve_tools([demo()], first))
    twos = by_name(resolve_tools([demo()], second))
    try:
        one = int(await ones["pid"].ainvoke({}))
        two = int(await twos["pid"].ainvoke({}))
        assert one != two

        await first.aclose()
        assert gone(one) and not gone(two)
        assert int(await twos["pid"].ainvoke({})) == two
    finally:
        await second.aclose()
    assert gone(two)


async def test_a_tool_error_is_a_one_line_tool_exception(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    tools = by_name(resolve_tools([demo()], ctx))
    try:
        with pytest.raises(ToolException) as err:
            await tools["lookup"].ainvoke({"key": "gamma"})
        message = str(err.value)
        assert "unknown key 'gamma' (the table has 2 keys)" in message
        assert "\n" not in message
        # The session is still good after an error.
        assert await tools["lookup"].ainvoke({"key": "alpha"}) == "first letter"
    finally:
        await ctx.aclose()


async def test_the_server_sees_only_the_env_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "sk-test-secret")
    monkeypatch.setenv("DEMO_HOST_ONLY", "leaked")
    ctx = context(tmp_path)
    tools = by_name(resolve_tools([demo(env={"DEMO_GIVEN": "yes"})], ctx))
    try:
        assert await tools["has_secret"].ainvoke({}) == "TAVILY_API_KEY=False DEMO_GIVEN=yes"
    finally:
        await ctx.aclose()
    assert mcp.server_env(mcp.Options(name="x", command=["x"], env={"A": "1"})) == {
        **{k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
        "A": "1",
    }


def test_the_allow_list_keeps_only_the_named_tools(tmp_path: Path) -> None:
    tools = resolve_tools([demo(tools=["lookup", "add"])], context(tmp_path))
    assert [t.name for t in tools] == ["add", "lookup"]

    with pytest.raises(ToolRefError) as err:
        resolve_tools([demo(tools=["add", "subtract"])], context(tmp_path))
    assert str(err.value) == (
        "mcp server 'demo' has no tool 'subtract' (it has: add, has_secret, lookup, pid, wait)"
    )


def test_a_server_that_cannot_start_fails_the_build_in_one_line(tmp_path: Path) -> None:
    entry = {"mcp": {"name": "weather", "command": ["no-such-mcp-server-xyz", "--stdio"]}}
    with pytest.raises(ToolRefError) as err:
        resolve_tools([entry], context(tmp_path))
    assert str(err.value) == (
        "mcp server 'weather': could not start `no-such-mcp-server-xyz` with 1 argument:"
        " no such program: 'no-such-mcp-server-xyz'"
    )

    entry = {"mcp": {"name": "weather", "command": [sys.executable, "-m", "no_such_mcp_mod"]}}
    with pytest.raises(ToolRefError) as err:
        resolve_tools([entry], context(tmp_path))
    message = str(err.value)
    assert message.startswith("mcp server 'weather': could not start `")
    assert "No module named no_such_mcp_mod" in message  # the server's stderr
    assert "\n" not in message


def test_a_start_failure_does_not_show_arguments_or_url_credentials(tmp_path: Path) -> None:
    """Arguments and URLs may carry a ``${SECRET}`` the flow expanded: not in the error."""
    secret = "hunter2-SEKRIT"
    entry = {"mcp": {"name": "vault", "command": ["no-such-mcp-server-xyz", f"--auth={secret}"]}}
    with pytest.raises(ToolRefError) as err:
        resolve_tools([entry], context(tmp_path))
    assert secret not in str(err.value) and "`no-such-mcp-server-xyz`" in str(err.value)
    url = f"http://user:{secret}@127.0.0.1:9/mcp?token={secret}"
    with pytest.raises(ToolRefError) as err:
        resolve_tools([{"mcp": {"name": "docs", "url": url}}], context(tmp_path))
    assert secret not in str(err.value) and "http://127.0.0.1:9/mcp" in str(err.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "demo"}, "mcp.url: give exactly one of command (a stdio server) or url"),
        (
            {"name": "demo", "command": ["x"], "url": "http://h/mcp"},
            "mcp.url: give exactly one of command (a stdio server) or url",
        ),
        (
            {"name": "d", "url": "http://h/mcp", "env": {"A": "1"}},
            "mcp.url: env and cwd apply to a stdio server (command), not to a url",
        ),
        ({"name": "my server", "command": ["x"]}, "mcp.name: 'my server' is not a simple name"),
        ({"name": "agent-x", "command": ["x"]}, "mcp.name: 'agent-x': names starting with"),
        ({"name": "d", "command": []}, "mcp.command: command must name a program"),
        ({"name": "d", "url": "ftp://h"}, "mcp.url: url must start with http:// or https://"),
        ({"name": "d", "command": ["x"], "port": 1}, "mcp.port: unknown option; mcp takes: name,"),
    ],
)
def test_options_are_checked_when_the_flow_is_validated(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolRefError) as err:
        check_ref({"mcp": options})
    assert str(err.value).startswith(message)


async def test_a_crashed_server_is_started_again_for_the_next_call(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    tools = by_name(resolve_tools([demo()], ctx))
    try:
        first = int(await tools["pid"].ainvoke({}))
        os.kill(first, 9)
        second = int(await tools["pid"].ainvoke({}))
        assert second != first
        assert await tools["add"].ainvoke({"a": 1, "b": 1}) == "2"
        assert int(await tools["pid"].ainvoke({})) == second
    finally:
        await ctx.aclose()
    assert gone(second)


async def test_a_call_cancelled_by_the_runner_leaves_the_session_usable(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    tools = by_name(resolve_tools([demo()], ctx))
    try:
        pid = await tools["pid"].ainvoke({})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(tools["wait"].ainvoke({"seconds": 60}), 0.2)
        assert await tools["pid"].ainvoke({}) == pid
    finally:
        await ctx.aclose()


@pytest.fixture
def http_server() -> Iterator[str]:
    """The demo server over streamable HTTP, in this process; its endpoint URL."""
    spec = importlib.util.spec_from_file_location("mcp_server_demo_http", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.server.settings.stateless_http = True
    module.server.settings.json_response = True
    started = threading.Event()
    port: list[int] = []

    def on_started(number: int) -> None:
        port.append(number)
        started.set()

    config = uvicorn.Config(
        module.server.streamable_http_app(), host="127.0.0.1", port=0, log_level="warning"
    )
    server = NotifyingServer(config, on_started)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert started.wait(20), "the MCP HTTP server did not start"
    yield f"http://127.0.0.1:{port[0]}/mcp"
    server.should_exit = True
    thread.join(timeout=10)


async def test_a_streamable_http_server(tmp_path: Path, http_server: str) -> None:
    ctx = context(tmp_path)
    tools = by_name(resolve_tools([{"mcp": {"name": "docs", "url": http_server}}], ctx))
    try:
        assert {server_of(t) for t in tools.values()} == {"docs"}
        assert await tools["add"].ainvoke({"a": 20, "b": 22}) == "42"
        with pytest.raises(ToolException, match="unknown key 'zeta'"):
            await tools["lookup"].ainvoke({"key": "zeta"})
    finally:
        await ctx.aclose()


def test_an_unreachable_url_fails_the_build_in_one_line(tmp_path: Path) -> None:
    entry = {"mcp": {"name": "docs", "url": "http://127.0.0.1:9/mcp"}}
    with pytest.raises(ToolRefError) as err:
        resolve_tools([entry], context(tmp_path))
    assert str(err.value).startswith(
        "mcp server 'docs': could not connect to http://127.0.0.1:9/mcp: ConnectError"
    )


def adder(body: dict[str, Any]) -> str:
    """Call ``add`` on the first reply; box the number the tool returned after."""
    messages = body["messages"]
    system = messages[0]["content"]
    assert "## Server name: demo" in system
    if not any(m["role"] == "assistant" for m in messages):
        return "Adding.</think>\n\nCalling add.\n\n" + render_call("demo", "add", {"a": 2, "b": 3})
    results = [m["content"] for m in messages[2:] if m["role"] == "user"]
    results = [r for r in results if not is_closing_request(r)]
    number = re.fullmatch(r"\s*(\d+)\s*", results[-1])
    assert number, results[-1]
    return f"Done.</think>\n\nFinal answer: \\boxed{{{number.group(1)}}}"


async def test_an_agent_calls_an_mcp_tool_end_to_end(home: Path, tmp_path: Path) -> None:
    with SimServer(adder) as srv:
        flow = validate_flow(
            {
                "name": "mcp-demo",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 512}},
                "agents": {"main": {"model": "m", "tools": [demo(tools=["add", "pid"])]}},
                "entry": "main",
            }
        )
        outcome = await start_run(
            "What is 2 + 3?", flow, run_id="mcp-1", store_url=f"sqlite:///{tmp_path}/runs.db"
        )
        requests = srv.requests

    assert outcome.status == "completed", outcome.reason
    assert outcome.answer == "5"
    system = requests[0]["messages"][0]["content"]
    assert "## Server name: demo\n### Tool name: add" in system
    assert "### Tool name: pid" in system and "### Tool name: lookup" not in system
    assert requests[1]["messages"][-1]["content"].strip() == "5"


def pid_teller(body: dict[str, Any]) -> str:
    """Call ``pid`` on the first reply; box the process id the tool returned after."""
    messages = body["messages"]
    if not any(m["role"] == "assistant" for m in messages):
        return "Asking.</think>\n\nCalling pid.\n\n" + render_call("demo", "pid", {})
    results = [m["content"] for m in messages[2:] if m["role"] == "user"]
    results = [r for r in results if not is_closing_request(r)]
    number = re.fullmatch(r"\s*(\d+)\s*", results[-1])
    assert number, results[-1]
    return f"Done.</think>\n\nFinal answer: \\boxed{{{number.group(1)}}}"


async def test_runs_at_once_get_one_session_each_closed_at_their_end(
    home: Path, tmp_path: Path
) -> None:
    with SimServer(pid_teller) as srv:
        flow = validate_flow(
            {
                "name": "mcp-pids",
                "models": {"m": {"base_url": srv.base_url, "max_tokens": 512}},
                "agents": {"main": {"model": "m", "tools": [demo(tools=["pid"])]}},
                "entry": "main",
            }
        )
        store = f"sqlite:///{tmp_path}/runs.db"
        outcomes = await asyncio.gather(
            *(start_run("Your pid?", flow, run_id=f"pid-{n}", store_url=store) for n in (1, 2))
        )

    assert [o.status for o in outcomes] == ["completed", "completed"], outcomes
    pids = {int(str(o.answer)) for o in outcomes}
    assert len(pids) == 2  # one server per run
    assert all(gone(pid) for pid in pids)  # each run closed its session
