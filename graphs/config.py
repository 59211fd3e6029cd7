"""How a flow file describes one agent: its model, budget, window and tools."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from mirograph.agents.config import ModelConfig
from mirograph.agents.tools.registry import (
    ToolRefError,
    check_environment,
    check_ref,
    environment_warnings,
    model_refs,
    parse_ref,
)
from mirograph.graphs.sub_agents import tool_name_of

#: Validation context key: False checks tool references without importing them.
IMPORT_TOOLS = "import_tools"

#: Protocol page: a result longer than this is cut and ends with the marker.
MAX_RESULT_CHARS = 100_000


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Name of an entry under the flow's ``models``.
    model: str
    #: Which objective the system prompt states: main, browsing, coding, reasoning.
    role: str | None = None
    #: Replaces the role's objective text.
    objective: str | None = None
    #: A file whose text replaces the system prompt ($today, $tools, $objective).
    system_prompt_template: Path | None = None
    max_turns: int = Field(600, gt=0)
    #: Keep-K: tool results sent in full; -1 keeps all.
    keep_tool_results: int = Field(5, ge=-1)
    #: ``keep_last``: keep-K exactly as trained. ``blocks``: results leave the
    #: window ``retention_block`` at a time (same text on average, better
    #: prefix-cache reuse on the server).
    retention: Literal["keep_last", "blocks"] = "keep_last"
    retention_block: int = Field(5, ge=2)
    #: Times a reply cut by max_tokens is asked again with twice the budget.
    max_length_retries: int = Field(2, ge=0)
    #: Times one repeated query is rolled back before it is let through.
    max_duplicate_rollbacks: int = Field(2, ge=0)
    #: Resamples in a row (malformed calls, stray tags) before the agent closes.
    max_rollbacks: int = Field(5, ge=0)
    #: Tool sets by name, ``{name: {option: value}}`` for a set with settings, or
    #: import paths ``package.module:attribute``.
    tools: list[str | dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    #: Agents this one may call; each appears to it as a tool on ``agent-<name>``.
    sub_agents: list[str] = Field(default_factory=list)
    #: How a parent sees this agent: tool name and description (defaults by role;
    #: browsing is ``search_and_browse``, as the weights know it).
    tool_name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    tool_description: str | None = None
    tool_timeout_s: float = Field(600.0, gt=0)
    max_result_chars: int = Field(MAX_RESULT_CHARS, gt=0)


#: Agent names become node names (``agent_<name>``) and servers (``agent-<name>``).
AGENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def recursion_limit(max_turns: int, *, delegates: bool = False) -> int:
    """LangGraph steps an agent may take: start, model+tools per turn, close, margin.

    A turn of an agent with sub-agents takes one more step (``collect``).
    """
    return (3 if delegates else 2) * max_turns + 8


class FlowConfig(BaseModel):
    """A whole research graph: named models, named agents, and the entry agent.

    Cross-references are checked here, so a graph built from Python is held
    to the same rules as one loaded from a flow file.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    models: dict[str, ModelConfig]
    agents: dict[str, AgentConfig]
    entry: str
    #: Tasks of one step that run at once: sub-agent calls of one reply (and, nested,
    #: theirs); more wait their turn. Bounds load on the model servers.
    max_parallel: int = Field(8, gt=0)
    #: Budgets of the whole run (all agents, all sessions). Past one, every agent
    #: makes its closing request, so the run still ends with an answer.
    max_tokens_total: int | None = Field(None, gt=0)
    max_wall_seconds: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> FlowConfig:
        # Reading a stored run (show, export) must not need its custom tools importable.
        imports = (info.context or {}).get(IMPORT_TOOLS, True)
        if self.entry not in self.agents:
            raise ValueError(
                f"entry {self.entry!r} is not an agent; defined agents: {_names(self.agents)}"
            )
        for name, agent in self.agents.items():
            if not AGENT_NAME.fullmatch(name):
                raise ValueError(
                    f"agents.{name}: agent names use letters, digits, '_' and '-'"
                    " (they name graph nodes and servers); rename it"
                )
            if agent.model not in self.models:
                raise ValueError(
                    f"agents.{name}.model: unknown model {agent.model!r};"
                    f" defined models: {_names(self.models)}"
                )
            seen: dict[str, str] = {}
            for sub in agent.sub_agents:
                if sub not in self.agents:
                    raise ValueError(
                        f"agents.{name}.sub_agents: unknown agent {sub!r};"
                        f" defined agents: {_names(self.agents)}"
                    )
                tool = tool_name_of(sub, self.agents[sub].role, self.agents[sub].tool_name)
                if tool in seen:
                    raise ValueError(
                        f"agents.{name}.sub_agents: {seen[tool]!r} and {sub!r} would both be"
                        f" called {tool!r}; give one of them another agents.<name>.tool_name"
                    )
                seen[tool] = sub
            for i, ref in enumerate(agent.tools):
                try:
                    options = check_ref(ref, imports=imports)
                except ToolRefError as exc:
                    raise ValueError(f"agents.{name}.tools[{i}]: {exc}") from None
                for key, model in model_refs(options).items():
                    if model not in self.models:
                        raise ValueError(
                            f"agents.{name}.tools[{i}].{parse_ref(ref).name}.{key}: unknown model"
                            f" {model!r}; defined models: {_names(self.models)}"
                        )
                if options is not None:  # stored resolved (e.g. absolute paths) for resume
                    agent.tools[i] = {parse_ref(ref).name: options.model_dump(mode="json")}
        cycle = _find_cycle({name: a.sub_agents for name, a in self.agents.items()})
        if cycle:
            raise ValueError(f"sub_agents form a cycle: {' -> '.join(cycle)}; remove one link")
        return self

    def environment_warnings(self) -> list[str]:
        """Caveats of this flow's tools here, each once (blocking: may probe the system)."""
        found: list[str] = []
        for agent in self.agents.values():
            for ref in agent.tools:
                found.extend(w for w in environment_warnings(ref) if w not in found)
        return found

    def check_environment(self) -> None:
        """Raise ``ValueError`` (naming the key path) if a tool set cannot work here."""
        for name, agent in self.agents.items():
            for i, ref in enumerate(agent.tools):
                try:
                    check_environment(ref)
                except ToolRefError as exc:
                    raise ValueError(f"agents.{name}.tools[{i}]: {exc}") from None


def _names(mapping: dict[str, object]) -> str:
    return ", ".join(sorted(mapping)) or "none"


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the sub-agent graph as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (found := visit(node)):
            return found
    return None
