"""Slips the reference agent repairs in a call before running it, in one table.

The weights sometimes name a tool's server wrongly, call ``python`` for
``run_python_code``, write ``code`` for ``code_block`` or ``description`` for
``info_to_extract``, or leave out a ``sandbox_id``; the reference agent quietly
fixes these (docs/mirothinker-protocol.md, "Slips the reference repairs"). The
tool runs the repaired call; the stored reply keeps what the model wrote, so
the weights see their own text. Each repair applies only where it cannot be
wrong, judged from the agent's tools and their schemas:

- a server name is repaired only for a known tool (an agent's tool names are
  unique: ``tool_refs`` refuses one defined twice);
- a tool name only when the written name is no tool and the target is one;
- an argument only for a tool whose schema has the right name and not the
  written one, and only when the call does not give both;
- a missing argument gets a default only where the schema requires it (the
  built-in ``run_python_code`` does not: without one it uses the run's default
  sandbox, so leaving it out there is no slip).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.messages.tool import ToolCall
from langchain_core.tools import BaseTool

from mirograph.agents.tools.base import listed_schema, server_of

#: Tool names the weights write for another tool: written -> meant.
TOOL_NAMES: Mapping[str, str] = {"python": "run_python_code"}
#: Argument names the weights write for another, in the order tried: (written, meant).
ARGUMENT_NAMES: Sequence[tuple[str, str]] = (
    ("code", "code_block"),
    ("description", "info_to_extract"),
    ("introduction", "info_to_extract"),  # the reference repairs this one too
)
#: Required arguments the weights leave out, and what the reference sends instead.
DEFAULTS: Mapping[str, str] = {"sandbox_id": "default"}


@dataclass(frozen=True)
class Repaired:
    """A call as it will run, and the slips repaired in it (empty: none)."""

    call: ToolCall
    slips: tuple[str, ...]


class SlipRepairs:
    """The repairs for one agent's tools."""

    def __init__(self, tools: Sequence[BaseTool]) -> None:
        self._servers = {tool.name: server_of(tool) for tool in tools}
        schemas = {tool.name: _schema(tool) for tool in tools}
        self._params = {name: frozenset(s.get("properties") or ()) for name, s in schemas.items()}
        self._required = {name: frozenset(s.get("required") or ()) for name, s in schemas.items()}

    def calls(self, reply: AIMessage) -> list[Repaired]:
        """Each parsed call of ``reply`` repaired, in call order."""
        written = reply.response_metadata.get("servers")
        servers = written if isinstance(written, dict) else {}
        return [self.repair(call, servers.get(call["name"])) for call in reply.tool_calls]

    def reply(self, reply: AIMessage) -> AIMessage:
        """``reply`` as a copy whose calls are repaired (itself when none is): what
        is judged a repeated query, as the reference keys its queries after repairing."""
        repaired = self.calls(reply)
        if not any(r.slips for r in repaired):
            return reply
        return reply.model_copy(update={"tool_calls": [r.call for r in repaired]})

    def count(self, reply: AIMessage) -> int:
        """How many slips the calls of ``reply`` hold."""
        return sum(len(repaired.slips) for repaired in self.calls(reply))

    def repair(self, call: ToolCall, server: str | None = None) -> Repaired:
        """``call`` with its slips repaired; ``server`` is the one the model wrote."""
        name, args = call["name"], dict(call["args"])
        slips: list[str] = []
        meant = TOOL_NAMES.get(name)
        if name not in self._servers and meant in self._servers:
            slips.append(f"tool {name} -> {meant}")
            name = meant
        actual = self._servers.get(name)
        if server is not None and actual is not None and server != actual:
            slips.append(f"server {server} -> {actual}")
        params = self._params.get(name, frozenset())
        for wrong, right in ARGUMENT_NAMES:
            if right in params and wrong not in params and wrong in args and right not in args:
                args[right] = args.pop(wrong)
                slips.append(f"argument {wrong} -> {right}")
        for arg, default in DEFAULTS.items():
            if arg in self._required.get(name, ()) and arg not in args:
                args[arg] = default
                slips.append(f"missing {arg}")
        if not slips:
            return Repaired(call, ())
        return Repaired(
            ToolCall(name=name, args=args, id=call.get("id"), type="tool_call"), tuple(slips)
        )


def _schema(tool: BaseTool) -> dict[str, Any]:
    """The tool's listed schema; an empty one where it cannot be built (no repair)."""
    try:
        schema = listed_schema(tool)
    except Exception:  # a tool's odd schema must not stop its calls from running
        return {}
    return schema if isinstance(schema, dict) else {}
