"""The tool runner against hostile tools: whatever a tool does, the model gets a result.

A tool may exit, raise an exception that cannot be printed, or return what
JSON cannot encode; each becomes a tool error or text, never a failed run.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from mirograph.graphs.tool_runner import TRUNCATED, ToolRunner


async def run_one(t: BaseTool, max_chars: int = 1000, timeout_s: float = 30) -> ToolMessage:
    runner = ToolRunner([t], timeout_s=timeout_s, max_chars=max_chars)
    reply = AIMessage("", tool_calls=[{"name": t.name, "args": {}, "id": "c1"}])
    [result] = await runner.run(reply)
    return result


EXITS_SCRIPT = """
import asyncio, sys
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from mirograph.graphs.tool_runner import ToolRunner

@tool
def sync_exit() -> str:
    '''Exits.'''
    sys.exit(3)

@tool
def sync_interrupt() -> str:
    '''Interrupts.'''
    raise KeyboardInterrupt

@tool
async def async_exit() -> str:
    '''Exits.'''
    sys.exit(3)

@tool
async def async_interrupt() -> str:
    '''Interrupts.'''
    raise KeyboardInterrupt

async def main():
    tools = [sync_exit, sync_interrupt, async_exit, async_interrupt]
    runner = ToolRunner(tools, timeout_s=30, max_chars=1000)
    calls = [{"name": t.name, "args": {}, "id": t.name} for t in tools]
    for result in await runner.run(AIMessage("", tool_calls=calls)):
        print(result.status, result.content)

asyncio.run(main())
print("still running")
"""


def test_a_tool_that_exits_is_a_tool_error_not_the_end_of_the_process() -> None:
    """``sys.exit(3)`` in a tool used to end the CLI with 3, the code that means "paused"."""
    done = subprocess.run(
        [sys.executable, "-c", EXITS_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "error Tool call to sync_exit on tools failed: the tool exited (SystemExit 3)",
        "error Tool call to sync_interrupt on tools failed: the tool exited (KeyboardInterrupt)",
        "error Tool call to async_exit on tools failed: the tool exited (SystemExit 3)",
        "error Tool call to async_interrupt on tools failed: the tool exited (KeyboardInterrupt)",
        "still running",
    ]


async def test_cancelling_the_run_still_cancels_an_async_tool() -> None:
    started = asyncio.Event()

    @tool
    async def waits() -> str:
        """Waits forever."""
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(run_one(waits))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
async def test_a_lone_surrogate_in_a_result_is_replaced(sync: bool) -> None:
    """It used to fail the run later, when the message was encoded as UTF-8."""

    def surrogate() -> str:
        """Returns a lone surrogate."""
        return "before \ud800 after \ud83d\ude00"

    async def asurrogate() -> str:
        """Returns a lone surrogate."""
        return surrogate()

    t = tool(surrogate) if sync else tool("surrogate")(asurrogate)
    result = await run_one(t)
    assert result.content == "before \ufffd after \U0001f600"  # a split pair is joined
    result.content.encode("utf-8")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str of exception failed")


class Unshowable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


@tool
def raises_unprintable() -> str:
    """Raises an exception whose message cannot be made."""
    raise Unprintable


@tool
def raises_with_surrogate() -> str:
    """Raises with a lone surrogate in the message."""
    raise ValueError("bad \udc80 byte")


@tool
def deep() -> Any:
    """Returns a list nested 100,000 deep."""
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    return nested


@tool
def unshowable() -> Any:
    """Returns an object that JSON cannot encode and whose str raises."""
    return {"x": Unshowable()}


@tool
def huge() -> str:
    """Returns 20 MB of text."""
    return "x" * (20 * 2**20)


async def test_an_exception_whose_message_raises_is_a_tool_error() -> None:
    result = await run_one(raises_unprintable)
    assert result.status == "error"
    assert result.content == (
        "Tool call to raises_unprintable on tools failed:"
        " Unprintable: (its message cannot be shown)"
    )
    result = await run_one(raises_with_surrogate)
    assert result.content.endswith("ValueError: bad \ufffd byte")


async def test_results_json_cannot_encode_still_become_text() -> None:
    """json.dumps raised RecursionError, then str() did; neither may escape the runner."""
    result = await run_one(deep)
    assert result.status != "error"
    assert result.content.startswith("(the tool returned a list that cannot be shown")
    result = await run_one(unshowable)
    assert result.content.startswith("(the tool returned a dict that cannot be shown")


async def test_a_huge_result_is_cut_to_the_budget() -> None:
    result = await run_one(huge, max_chars=1000)
    assert result.content == "x" * 1000 + f"\n{TRUNCATED}"
