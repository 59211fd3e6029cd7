"""Run one turn's tool calls: concurrently, time-limited, never raising.

Each call runs with the slips the reference agent repairs repaired first
(``graphs.slips``: a wrong server name, ``python``, ``code`` and the like).
A failure becomes a one-line error the model sees, naming tool and server
(``sys.exit()`` or ``KeyboardInterrupt`` in a tool included: either would end
the process). Otherwise the result goes as the reference agent sends it: an
empty result as an empty string, a long one cut with a newline and the
protocol's marker; text that cannot be encoded (a lone surrogate) is repaired.
Results come back in call order; the MiroThinker adapter sends one turn's
results as one user message, joined by newlines.

How ``timeout_s`` bounds a tool depends on how it is written:
- an async tool is cancelled at the timeout (it must await to be cancellable:
  an async tool that computes without awaiting holds the event loop, and no
  in-process mechanism can stop it; CPU-bound work belongs in a thread or in
  ``agents.tools.bounded.run_bounded``, as the built-in tools do);
- a sync tool runs in a daemon thread of its own, never in the loop's default
  executor; at the timeout the model is told, but a thread cannot be killed,
  so it runs on in the background. Its own thread keeps it from starving the
  file, network (DNS) and store calls that the default executor serves for
  every run of the process, and a daemon thread does not hold up the exit of
  ``asyncio.run`` or of the process. Python switches threads every few
  milliseconds, so while the tool runs Python code the loop and other runs go
  on (slower); but C code that holds the GIL (a backtracking regex, a big
  ``json.loads``) is not interrupted: every run of the process, and the
  tool's own timeout, wait until it returns. A CPU-heavy tool should use
  ``run_bounded``;
- built-in CPU-bound work (page to text, PDF text, corpus indexing) runs in a
  worker process that is killed at its own limit (``run_bounded``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.messages.tool import InvalidToolCall, ToolCall
from langchain_core.tools import BaseTool, StructuredTool, Tool
from langgraph.errors import GraphBubbleUp
from pydantic import ValidationError

from mirograph.agents.tools.base import server_of
from mirograph.agents.tools.bounded import Exited, in_daemon_thread
from mirograph.graphs.slips import Repaired, SlipRepairs
from mirograph.state.messages import new_id
from mirograph.state.redact import redact
from mirograph.text import describe, one_line

#: What ends a cut result, after a newline (the reference agent's marker).
TRUNCATED = "... [Result truncated]"

#: Told of each call once it has its result: the call as run, the result, seconds
#: taken, and the slips repaired in it (``graphs.slips``).
ToolReport = Callable[[ToolCall | InvalidToolCall, ToolMessage, float, tuple[str, ...]], None]


class ToolRunner:
    def __init__(
        self,
        tools: Sequence[BaseTool],
        *,
        timeout_s: float,
        max_chars: int,
        slips: SlipRepairs | None = None,
    ) -> None:
        self.tools = {tool.name: _guarded(tool) for tool in tools}
        self.slips = slips if slips is not None else SlipRepairs(tools)
        self.timeout_s = timeout_s
        self.max_chars = max_chars

    async def run(self, reply: AIMessage, report: ToolReport | None = None) -> list[ToolMessage]:
        """Results in call order; malformed calls answered with their parse error.

        Each call runs with its slips repaired (``graphs.slips``); ``reply`` is unchanged.
        """
        calls = self.slips.calls(reply)
        results = await asyncio.gather(*(self._timed(call, report) for call in calls))
        for call in reply.invalid_tool_calls:
            results.append(self._malformed(call))
            if report is not None:
                report(call, results[-1], 0.0, ())
        return results

    async def _timed(self, repaired: Repaired, report: ToolReport | None) -> ToolMessage:
        if report is None:
            return await self._call(repaired.call)
        started = time.perf_counter()
        result = await self._call(repaired.call)
        report(repaired.call, result, time.perf_counter() - started, repaired.slips)
        return result

    async def _call(self, call: ToolCall) -> ToolMessage:
        name = call["name"]
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return _error(call["id"], name, f"Unknown tool {name!r}. Available tools: {known}.")
        server = server_of(tool)
        sync = is_sync(tool)
        try:
            output = await asyncio.wait_for(_invoke(tool, call["args"], sync), self.timeout_s)
        except TimeoutError:
            detail = f"timed out after {self.timeout_s:g} s"
            if sync:
                detail += " (a sync tool cannot be stopped; it may still be running)"
            return _error(call["id"], name, _failure(name, server, detail))
        except ValidationError as exc:
            detail = f"invalid arguments: {_validation_summary(exc)}"
            return _error(call["id"], name, _failure(name, server, detail))
        except GraphBubbleUp:
            raise  # an interrupt raised inside a tool pauses the graph; it is not a failure
        except Exited as exc:
            return _error(call["id"], name, _failure(name, server, str(exc)))
        except Exception as exc:
            detail = describe(exc)
            return _error(call["id"], name, _failure(name, server, detail))
        text = _as_text(output)
        # Only what can be shown is cleaned and redacted (a tool may return 100 MB).
        cut = len(text) > 2 * self.max_chars
        text = redact(_clean(text[: 2 * self.max_chars]), shapes=False)  # it may echo its env
        if cut:
            text = f"{text[: self.max_chars]}\n{TRUNCATED}"
        return ToolMessage(
            content=self.truncate(text), tool_call_id=call["id"], name=name, id=new_id()
        )

    def _malformed(self, call: InvalidToolCall) -> ToolMessage:
        """The parser's reason (bad JSON, a call past the per-reply cap) told to the model."""
        name = call.get("name") or "unknown"
        reason = call.get("error") or "its arguments are not valid JSON"
        return _error(
            call.get("id") or new_id(), name, f"Tool call to {name} was not executed: {reason}"
        )

    def truncate(self, text: str) -> str:
        """``text`` cut to the agent's result budget, ending with the protocol's marker."""
        if len(text) <= self.max_chars:
            return text
        return f"{text[: self.max_chars]}\n{TRUNCATED}"


def is_sync(tool: BaseTool) -> bool:
    """True for a tool written as a plain function (LangChain would run it in a thread)."""
    if isinstance(tool, StructuredTool | Tool):
        return tool.coroutine is None
    return type(tool)._arun is BaseTool._arun


async def _invoke(tool: BaseTool, args: dict[str, Any], sync: bool) -> Any:
    """``tool.ainvoke``, but a sync tool runs in a daemon thread of its own."""
    if not sync:
        return await tool.ainvoke(args)
    context = contextvars.copy_context()  # the run's config and callbacks go along
    return await in_daemon_thread(context.run, tool.invoke, args)


def _guarded(tool: BaseTool) -> BaseTool:
    """``tool`` with its coroutine's ``SystemExit`` or ``KeyboardInterrupt`` made ``Exited``.

    LangChain runs the coroutine as a task of its own, and asyncio re-raises
    either exception out of the loop when it ends a task: ``sys.exit(3)`` in
    an async tool would end the process, before any caller could catch it.
    (Ctrl-C reaches the CLI by a signal handler, not as an exception inside a
    tool; cancellation still propagates.) A sync tool's are caught by
    ``in_daemon_thread``.
    """
    if isinstance(tool, StructuredTool | Tool) and tool.coroutine is not None:
        return tool.model_copy(update={"coroutine": _no_exit(tool.coroutine)})
    return tool


def _no_exit(coroutine: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(coroutine)  # keeps the signature LangChain inspects
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return await coroutine(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt) as exc:
            raise Exited(exc) from None

    return guarded


def _failure(name: str, server: str, detail: str) -> str:
    return f"Tool call to {name} on {server} failed: {detail}"


def _error(call_id: str, name: str, text: str) -> ToolMessage:
    line = redact(_clean(one_line(text)))
    return ToolMessage(content=line, tool_call_id=call_id, name=name, status="error", id=new_id())


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, ToolMessage):
        return output.text
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except Exception:  # not JSON, nested 100,000 deep, a __str__ (the default) that raises
        pass
    try:
        return str(output)
    except Exception as exc:
        return f"(the tool returned a {type(output).__name__} that cannot be shown: {exc!r:.200})"


def _clean(text: str) -> str:
    """``text`` with lone surrogates replaced: encoding it later would fail the run."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # pairs split in two are joined again; lone halves replaced
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _validation_summary(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts[:5])
