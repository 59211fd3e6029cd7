"""How a flow file describes one agent: its model, budget, window and tools."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from mirograph.agents.config import MIN_PROMPT_TOKENS, ModelConfig
from mirograph.agents.fields import DAY_S, Float, Int
from mirograph.agents.tools.tool_refs import (
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

#: The flow's own key for the folder of its file (tool modules beside it are imported).
FLOW_DIR = "flow_dir"

#: Protocol page: a result longer than this is cut and ends with the marker.
MAX_RESULT_CHARS = 100_000
#: Bounds of the flow schema: past them a setting is a slip, not a choice.
MAX_TURNS = 10_000
MAX_SUB_AGENT_DEPTH = 16
MAX_PARALLEL = 256
MAX_RUN_SECONDS = 365 * DAY_S

#: MiroThinker releases and the entry agent's turn budget each was published with
#: (the protocol page, "Versions"); the call format, keep-K and sampling are the same.
VERSION_TURNS = {"v1.0": 600, "v1.5": 400, "v1.7": 300}
#: Each release's restart rule (the protocol page, "Versions"): restarts after an
#: attempt with no boxed answer (``context_compress_limit``, 5 as published) and
#: whether the new task carries a summary of each earlier attempt (1.7: not).
VERSION_RESTARTS = {"v1.0": (5, True), "v1.5": (5, True), "v1.7": (5, False)}
MAX_RESTARTS = 100


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
    max_turns: Int = Field(600, gt=0, le=MAX_TURNS)
    #: Keep-K: tool results sent in full; -1 keeps all.
    keep_tool_results: Int = Field(5, ge=-1, le=MAX_TURNS)
    #: ``keep_last``: keep-K exactly as trained. ``blocks``: results leave the
    #: window ``retention_block`` at a time (same text on average, better
    #: prefix-cache reuse on the server).
    retention: Literal["keep_last", "blocks"] = "keep_last"
    retention_block: Int = Field(5, ge=2, le=MAX_TURNS)
    #: Times a reply cut by max_tokens is asked again, each time with a budget 10 %
    #: larger than the try before (the reference agent's rule: +10 %, up to 10).
    max_length_retries: Int = Field(10, ge=0, le=10)
    #: Rollbacks in a row after which a repeated query is let through (the reference:
    #: 4, the same as ``max_rollbacks``; the smaller of the two decides).
    max_duplicate_rollbacks: Int = Field(4, ge=0, le=100)
    #: Rollbacks in a row (malformed calls, refusals, loops, repeated queries, a tool
    #: error or an empty search in the results, ...) after which the next reply is
    #: accepted as it is, its results shown (the reference: at most 4).
    max_rollbacks: Int = Field(4, ge=0, le=100)
    #: Times the agent starts again from the task when an attempt ends with no
    #: boxed answer (the turns or the context spent, no box in the closing reply);
    #: the entry agent only. Each attempt has the whole ``max_turns``.
    max_restarts: Int = Field(0, ge=0, le=MAX_RESTARTS)
    #: A restarted task carries what each earlier attempt tried and found, asked
    #: of the model when the attempt ends (v1.0, v1.5); False restarts on the
    #: bare task (1.7).
    restart_summary: bool = True
    #: Tool sets by name, ``{name: {option: value}}`` for a set with settings, or
    #: import paths ``package.module:attribute``.
    tools: list[str | dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    #: Agents this one may call; each appears to it as a tool on ``agent-<name>``.
    sub_agents: list[str] = Field(default_factory=list)
    #: How a parent sees this agent: tool name and description (defaults by role;
    #: browsing is ``search_and_browse``, as the weights know it).
    tool_name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    tool_description: str | None = None
    tool_timeout_s: Float = Field(600.0, gt=0, le=DAY_S)
    max_result_chars: Int = Field(MAX_RESULT_CHARS, ge=100, le=100 * MAX_RESULT_CHARS)


#: Agent names become node names (``agent_<name>``) and servers (``agent-<name>``).
AGENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def recursion_limit(
    max_turns: int, *, delegates: bool = False, restarts: int = 0, rollbacks: int = 0
) -> int:
    """LangGraph steps an agent may take: start, model+tools per turn, close, margin;
    again for each restart (``restart`` instead of ``start``).

    A turn of an agent with sub-agents takes one more step (``collect``); a turn
    rolled back after its results took its steps without counting, up to
    ``rollbacks`` of them before each kept turn.
    """
    per_turn = (3 if delegates else 2) * (1 + rollbacks)
    return (per_turn * max_turns + 8) * (restarts + 1)


def _role(name: str, agent: AgentConfig) -> str:
    """The role an entry agent gets (``AgentLoop``): its own, its name's, else main."""
    return agent.role or (name if name in ("main", "browsing", "coding", "reasoning") else "main")


def _apply_version(name: str, entry: AgentConfig, version: str) -> set[str]:
    """The release's turn budget and restart rule, where the entry agent sets none
    (restarts only for a main agent); the keys it set."""
    restarts, summary = VERSION_RESTARTS[version]
    defaults: dict[str, Any] = {"max_turns": VERSION_TURNS[version]}
    if _role(name, entry) == "main":
        defaults |= {"max_restarts": restarts, "restart_summary": summary}
    applied = {key for key in defaults if key not in entry.model_fields_set}
    for key in applied:
        setattr(entry, key, defaults[key])
    # Still unset: a stored flow keeps them out (``_dump_references``), so a run resumed
    # with another ``version`` takes that version's values.
    entry.model_fields_set.difference_update(applied)
    return applied


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
    max_parallel: Int = Field(8, gt=0, le=MAX_PARALLEL)
    #: Budgets of the whole run (all agents, all sessions). Past one, every agent
    #: makes its closing request, so the run still ends with an answer.
    max_tokens_total: Int | None = Field(None, gt=0, le=10**12)
    max_wall_seconds: Float | None = Field(None, gt=0, le=MAX_RUN_SECONDS)
    #: Folder of the flow file, set by the loader: tool modules beside it import
    #: without ``PYTHONPATH`` (stored with the run, so a resume finds them too).
    flow_dir: str | None = None
    #: The MiroThinker release the flow drives (``VERSION_TURNS``): the entry agent's
    #: turn budget where the flow does not set ``max_turns``.
    version: str | None = None

    #: Strings that were ``${VAR}`` references: key path -> (as written, as expanded).
    _references: dict[tuple[str | int, ...], tuple[str, str]] = PrivateAttr(default_factory=dict)
    #: The entry agent's keys that ``version`` set (left out of a dump: derived again).
    _from_version: set[str] = PrivateAttr(default_factory=set)

    @field_validator("version", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> Any:
        """``v1.7``, ``1.7`` (YAML reads it as a number) or None; anything else is refused."""
        if value is None:
            return None
        text = str(value).strip() if isinstance(value, str | int | float) else ""
        name = text if text.startswith("v") else f"v{text}"
        if isinstance(value, bool) or name not in VERSION_TURNS:
            raise ValueError(
                f"unknown MiroThinker version {value!r}; use one of: {', '.join(VERSION_TURNS)}"
            )
        return name

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> FlowConfig:
        # Reading a stored run (show, export) must not need its custom tools importable.
        imports = (info.context or {}).get(IMPORT_TOOLS, True)
        if self.entry not in self.agents:
            raise ValueError(
                f"entry {self.entry!r} is not an agent; defined agents: {_names(self.agents)}"
            )
        entry = self.agents[self.entry]
        if self.version is not None:
            self._from_version = _apply_version(self.entry, entry, self.version)
        for name, agent in self.agents.items():
            if agent.max_restarts and (name != self.entry or _role(name, agent) != "main"):
                raise ValueError(
                    f"agents.{name}.max_restarts: only the entry agent ({self.entry!r}) with"
                    " role main restarts, as it alone gives a boxed answer; remove the key"
                )
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
                    options = check_ref(ref, imports=imports, search_dir=self.flow_dir)
                except ToolRefError as exc:
                    raise ValueError(f"agents.{name}.tools[{i}]: {exc}") from None
                for key, model in model_refs(options).items():
                    if model not in self.models:
                        raise ValueError(
                            f"agents.{name}.tools[{i}].{parse_ref(ref).name}.{key}: unknown model"
                            f" {model!r}; defined models: {_names(self.models)}"
                        )
                    _check_reply_budget(
                        getattr(options, "max_tokens", None),
                        self.models[model],
                        f"agents.{name}.tools[{i}].{parse_ref(ref).name}.max_tokens",
                    )
                if options is not None:  # stored resolved (e.g. absolute paths) for resume
                    agent.tools[i] = {parse_ref(ref).name: options.model_dump(mode="json")}
        edges = {name: a.sub_agents for name, a in self.agents.items()}
        cycle = _find_cycle(edges)
        if cycle:
            raise ValueError(f"sub_agents form a cycle: {' -> '.join(cycle)}; remove one link")
        chain = _longest_chain(edges, self.entry)
        if len(chain) > MAX_SUB_AGENT_DEPTH:
            raise ValueError(
                f"sub_agents: the chain {chain[0]} -> {chain[1]} -> ... -> {chain[-1]} is"
                f" {len(chain)} agents deep; at most {MAX_SUB_AGENT_DEPTH} levels are allowed"
            )
        return self

    def keep_references(self, references: dict[tuple[str | int, ...], tuple[str, str]]) -> None:
        """Remember which values came from ``${VAR}``: ``model_dump`` writes them back as
        written (a stored run keeps the reference, never the secret)."""
        self._references = dict(references)

    @model_serializer(mode="wrap")
    def _dump_references(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for path, (written, expanded) in self._references.items():
            _put_back(data, path, written, expanded)
        entry = (data.get("agents") or {}).get(self.entry)
        if isinstance(entry, dict):
            for key in self._from_version:
                entry.pop(key, None)
        return data

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


def _check_reply_budget(max_tokens: int | None, model: ModelConfig, where: str) -> None:
    """A tool's own reply budget on a flow model must leave that model room for a prompt."""
    if max_tokens is None:
        return
    room = model.context_tokens - max_tokens
    if room < MIN_PROMPT_TOKENS:
        raise ValueError(
            f"{where}: {max_tokens} leaves {room} of the model's context_tokens"
            f" ({model.context_tokens}) for the prompt; at least {MIN_PROMPT_TOKENS} are"
            " needed: lower it or raise the model's context_tokens"
        )


def _names(mapping: dict[str, object]) -> str:
    return ", ".join(sorted(mapping)) or "none"


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the sub-agent graph as a path that returns to its start, or None.

    Iterative depth-first search: a chain thousands of agents long cannot recurse.
    """
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(edges.get(start, []))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
                continue
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                pending.append(iter(edges.get(nxt, [])))
    return None


def _longest_chain(edges: dict[str, list[str]], entry: str) -> list[str]:
    """The longest path of sub-agent calls from ``entry`` (the graph has no cycle)."""
    longest: dict[str, list[str]] = {}
    stack: list[tuple[str, bool]] = [(entry, False)]
    while stack:
        node, children_done = stack.pop()
        if node in longest:
            continue
        subs = edges.get(node, [])
        if children_done:
            below = max((longest[s] for s in subs), key=len, default=[])
            longest[node] = [node, *below]
            continue
        stack.append((node, True))
        stack.extend((s, False) for s in subs if s not in longest)
    return longest[entry]


def _put_back(data: Any, path: tuple[str | int, ...], written: str, expanded: str) -> None:
    """Put ``written`` at ``path`` of a dump if the value there is still ``expanded``
    (a validator that resolved it, e.g. to an absolute path, keeps its result)."""
    *parents, leaf = path or ("",)
    node = data
    for key in parents:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    try:
        current = node[leaf]
    except (KeyError, IndexError, TypeError):
        return
    if current == expanded or (
        not isinstance(current, str | dict | list)
        and str(current).lower() == expanded.strip().lower()
    ):
        node[leaf] = written


def override_keys(parts: list[str]) -> list[str] | None:
    """Keys the schema allows at a ``--set`` key path, or None where it does not say
    (tool options, deeper paths)."""
    schema: dict[int, type[BaseModel]] = {1: FlowConfig}
    if len(parts) == 3 and parts[0] == "models":
        schema[3] = ModelConfig
    if len(parts) == 3 and parts[0] == "agents":
        schema[3] = AgentConfig
    model = schema.get(len(parts))
    return sorted(model.model_fields) if model else None
