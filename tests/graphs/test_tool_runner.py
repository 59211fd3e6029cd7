"""The tool runner: a tool hogging the CPU cannot stop other runs of the process.

Two agent loops run in one process (as a worker or a benchmark runs them),
each against its own sim-model server over real HTTP, on one event loop.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool, tool
from support.loop_kit import call, make_loop, run_loop, scripted, servers

from mirograph.agents.mirothinker.parsing import MAX_CALLS_PER_REPLY, render_call
from mirograph.agents.tools.base import ToolContext, on_server
from mirograph.agents.tools.files import make_tools as file_tools
from mirograph.graphs.tool_runner import is_sync

server = pytest.fixture(servers)

#: Threads in the loop's default executor, as on a small machine (min(32, cores + 4)
#: is 6 on two cores): the hogs below are enough to take every one of them.
DEFAULT_THREADS = 2


class Hogs:
    """Sync tools that burn CPU until released (or for a minute at most)."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.running = 0
        self.all_running = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def tool(self) -> BaseTool:
        @tool
        def crunch(n: int) -> str:
            """Crunch numbers for a long time."""
            self.loop.call_soon_threadsafe(self._started)
            deadline = time.monotonic() + 60
            while not self.released.is_set() and time.monotonic() < deadline:
                pass
            return "crunched"

        return on_server(crunch, "lab")

    def _started(self) -> None:
        self.running += 1
        if self.running == DEFAULT_THREADS:
            self.all_running.set()


async def test_a_cpu_hogging_tool_does_not_stop_another_run(server, tmp_path: Path) -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(DEFAULT_THREADS))
    hogs = Hogs()
    hog_calls = "Crunching.</think>\n\n" + "\n".join(
        render_call("lab", "crunch", {"n": n}) for n in range(DEFAULT_THREADS)
    )
    hogging = server(scripted([hog_calls], then="Gave up.</think>\n\n\\boxed{late}"))
    notes = [call("write_file", path=f"notes/{n}.txt", content=f"note {n}") for n in range(3)] + [
        call("read_file", path="notes/2.txt")
    ]
    working = server(scripted(notes, then="Done.</think>\n\n\\boxed{note 2}"))
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    files = file_tools(ToolContext(run_id="b", workspace=workspace))

    async def hogging_run() -> dict[str, Any]:
        loop = make_loop(hogging, [hogs.tool()], tool_timeout_s=0.5, max_rollbacks=0)
        return await run_loop(loop, tmp_path / "a", thread="a")

    async def working_run() -> tuple[dict[str, Any], bool]:
        await hogs.all_running.wait()
        loop = make_loop(working, files)
        values = await asyncio.wait_for(run_loop(loop, tmp_path / "b", thread="b"), 30)
        still_hogging = not hogs.released.is_set() and hogs.running == DEFAULT_THREADS
        hogs.released.set()
        return values, still_hogging

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        hogged, (worked, during) = await asyncio.gather(hogging_run(), working_run())
    finally:
        hogs.released.set()
    assert worked["answer"] == "note 2"
    assert during  # it finished while every hog was still burning CPU
    assert (workspace / "notes" / "0.txt").read_text() == "note 0"
    assert hogged["answer"] == "late"
    [results] = [m for m in hogging.requests[1]["messages"] if m["role"] == "user"][1:]
    assert results["content"].count("timed out after 0.5 s (a sync tool cannot be stopped") == 2


def test_sync_and_async_tools_are_told_apart() -> None:
    @tool
    def plain(x: int) -> int:
        """Plain."""
        return x

    @tool
    async def awaiting(x: int) -> int:
        """Async."""
        return x

    assert is_sync(plain) and not is_sync(awaiting)


async def test_calls_past_the_cap_are_answered_as_skipped(server, tmp_path: Path) -> None:
    """One reply of 25 calls runs 10 tools; the model is told the other 15 were skipped."""
    ran: list[str] = []

    @tool
    def echo(text: str) -> str:
        """Echo."""
        ran.append(text)
        return f"echo {text}"

    many = "Many.</think>\n\n" + "\n".join(
        render_call("lab", "echo", {"text": str(n)}) for n in range(25)
    )
    srv = server(scripted([many], then="Done.</think>\n\n\\boxed{ok}"))
    loop = make_loop(srv, [on_server(echo, "lab")], max_rollbacks=0)  # skips are errors
    values = await run_loop(loop, tmp_path)
    assert values["answer"] == "ok"
    assert sorted(ran, key=int) == [str(n) for n in range(MAX_CALLS_PER_REPLY)]
    [results] = [m for m in srv.requests[1]["messages"] if m["role"] == "user"][1:]
    lines = results["content"].splitlines()
    assert lines[:MAX_CALLS_PER_REPLY] == [f"echo {n}" for n in range(MAX_CALLS_PER_REPLY)]
    assert lines[MAX_CALLS_PER_REPLY:] == [
        "Tool call to echo was not executed: skipped: a reply may make at most 10 tool calls;"
        " this call and the 14 after it were not run; make them in later turns"
    ]


STUCK_SCRIPT = """
import asyncio, threading
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from mirograph.graphs.tool_runner import ToolRunner

@tool
def stuck(n: int) -> str:
    '''Never returns.'''
    threading.Event().wait()

async def main():
    runner = ToolRunner([stuck], timeout_s=0.2, max_chars=1000)
    reply = AIMessage("", tool_calls=[{"name": "stuck", "args": {"n": 1}, "id": "c1"}])
    [result] = await runner.run(reply)
    print(result.content)

asyncio.run(main())
"""


def test_a_stuck_sync_tool_does_not_keep_the_process_from_exiting() -> None:
    """Its thread runs on, but neither ``asyncio.run`` nor the interpreter waits for it."""
    done = subprocess.run(
        [sys.executable, "-c", STUCK_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "timed out after 0.2 s (a sync tool cannot be stopped" in done.stdout
