"""Run one turn's tool calls: concurrently, time-limited, never raising.

A failure becomes a one-line error the model sees, naming tool and server;
an empty result a short sentence; a long one is cut with the protocol's marker.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.messages.tool import InvalidToolCall, ToolCall
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from pydantic import ValidationError

from mirograph.agents.tools.base import server_of
from mirograph.state.redact import redact

TRUNCATED = "[Result truncated]"

#: Told of each call once it has its result: the call, the result, seconds taken.
ToolReport = Callable[[ToolCall | InvalidToolCall, ToolMessage, float], None]


class ToolRunner:
    def __init__(self, tools: Sequence[BaseTool], *, timeout_s: float, max_chars: int) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.timeout_s = timeout_s
        self.max_chars = max_chars

    async def run(self, reply: AIMessage, report: ToolReport | None = None) -> list[ToolMessage]:
        """Results in call order; malformed calls answered with their parse error."""
        results = await asyncio.gather(*(self._timed(call, report) for call in reply.tool_calls))
        for call in reply.invalid_tool_calls:
            results.append(self._malformed(call))
            if report is not None:
                report(call, results[-1], 0.0)
        return results

    async def _timed(self, call: ToolCall, report: ToolReport | None) -> ToolMessage:
        if report is None:
            return await self._call(call)
        started = time.perf_counter()
        result = await self._call(call)
        report(call, result, time.perf_counter() - started)
        return result

    async def _call(self, call: ToolCall) -> ToolMessage:
        name = call["name"]
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return _error(call["id"], name, f"Unknown tool {name!r}. Available tools: {known}.")
        server = server_of(tool)
        try:
            output = await asyncio.wait_for(tool.ainvoke(call["args"]), self.timeout_s)
        except TimeoutError:
            detail = f"timed out after {self.timeout_s:g} s"
            return _error(call["id"], name, _failure(name, server, detail))
        except ValidationError as exc:
            detail = f"invalid arguments: {_validation_summary(exc)}"
            return _error(call["id"], name, _failure(name, server, detail))
        except GraphBubbleUp:
            raise  # an interrupt raised inside a tool pauses the graph; it is not a failure
        except Exception as exc:
            detail = f"{type(exc).__name__}: {_first_line(exc)}"
            return _error(call["id"], name, _failure(name, server, detail))
        text = redact(_as_text(output), shapes=False)  # a tool may echo its environment
        if not text.strip():
            text = f"Tool call to {name} on {server} completed, but produced no output."
        return ToolMessage(
            content=self.truncate(text), tool_call_id=call["id"], name=name, id=_id()
        )

    def _malformed(self, call: InvalidToolCall) -> ToolMessage:
        """The parser's reason (bad JSON, a call past the per-reply cap) told to the model."""
        name = call.get("name") or "unknown"
        reason = call.get("error") or "its arguments are not valid JSON"
        return _error(
            call.get("id") or _id(), name, f"Tool call to {name} was not executed: {reason}"
        )

    def truncate(self, text: str) -> str:
        """``text`` cut to the agent's result budget, ending with the protocol's marker."""
        if len(text) <= self.max_chars:
            return text
        return f"{text[: self.max_chars]}\n{TRUNCATED}"


def _failure(name: str, server: str, detail: str) -> str:
    return f"Tool call to {name} on {server} failed: {detail}"


def _error(call_id: str, name: str, text: str) -> ToolMessage:
    one_line = redact(" ".join(text.split()))
    return ToolMessage(content=one_line, tool_call_id=call_id, name=name, status="error", id=_id())


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, ToolMessage):
        return output.text
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(output)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:500] if lines else "(no message)"


def _validation_summary(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts[:5])


def _id() -> str:
    return uuid.uuid4().hex
