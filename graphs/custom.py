"""Build your own research graph from mirograph's agent loop.

A custom graph is a function ``build_graph(ctx: GraphContext) -> StateGraph``
whose state extends ``RunState`` (``question`` in, ``answer`` out). Inside it,
``ctx.agent(...)`` makes an agent loop (a MiroThinker or native model, its
tools, its keep-K window, its budget) and ``agent.node(ask, into)`` turns it
into a node of your graph. Run it with the CLI like a flow::

    mirograph run "question" --flow examples/verify_loop.py:build_graph
    mirograph resume RUN_ID

Each agent call runs as a subgraph in its own checkpoint namespace, so a
killed run resumes inside the agent at the turn it reached.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.pregel import Pregel

from mirograph.agents.config import ModelConfig
from mirograph.agents.models import build_chat_model
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.tools.base import ToolContext
from mirograph.agents.tools.tool_refs import ToolRefSpec, resolve_tools
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import AgentConfig, recursion_limit
from mirograph.graphs.run_control import announce_call
from mirograph.state.blobs import BlobStore
from mirograph.state.messages import new_id
from mirograph.state.schema import AgentStats, Invocation, empty_stats

#: Steps the custom graph itself may take (agents count their own steps).
DEFAULT_GRAPH_STEPS = 100


@dataclass(frozen=True)
class AgentResult:
    """What an agent call gives back to your graph."""

    answer: str | None
    stop_reason: str | None
    stats: AgentStats


@dataclass
class Agent:
    """An agent loop compiled as a subgraph (it checkpoints in the run's store)."""

    name: str
    loop: AgentLoop
    graph: Pregel

    def node(
        self,
        ask: Callable[[Mapping[str, Any]], str],
        into: Callable[[Mapping[str, Any], AgentResult], dict[str, Any]],
    ) -> Callable[[Mapping[str, Any], RunnableConfig], Coroutine[Any, Any, dict[str, Any]]]:
        """A node that asks this agent ``ask(state)`` and returns ``into(state, result)``.

        The node also records the call under ``invocations`` (``RunState``), so
        ``mirograph show`` reports it.
        """
        graph, name = self.graph, self.name

        async def node(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
            question = ask(state)
            ns = (config.get("configurable") or {}).get("checkpoint_ns") or ""
            call_id = new_id()
            finished = announce_call(name, "graph", ns, call_id, question)
            out = await graph.ainvoke({"question": question}, config)
            stats = out.get("stats") or empty_stats()
            result = AgentResult(out.get("answer"), out.get("stop_reason"), stats)
            finished("completed", result.stop_reason, stats["turns"])
            record = Invocation(
                agent=name,
                parent="graph",
                depth=1,
                call_id=call_id,
                subtask=question,
                status="completed",
                stop_reason=result.stop_reason,
                stats=stats,
                checkpoint_ns=ns,
            )
            nested = [{**r, "depth": r["depth"] + 1} for r in out.get("invocations") or ()]
            return {**into(state, result), "invocations": [record, *nested]}

        return node


@dataclass
class GraphContext:
    """What a custom graph is built with: the run's workspace and store, and agents."""

    run_id: str
    workspace: Path
    blobs: BlobStore | None = None
    #: Steps of the outer graph; raise it for graphs that loop many times.
    graph_steps: int = DEFAULT_GRAPH_STEPS
    #: Model endpoints that tool options may name (e.g. ``{reasoning: {model: ...}}``).
    models: dict[str, ModelConfig] = field(default_factory=dict)
    agents: list[AgentLoop] = field(default_factory=list)
    #: The date every agent's system prompt states: the run's first day (None: today).
    today: str | None = None

    def __post_init__(self) -> None:
        self._tools = ToolContext(self.run_id, self.workspace)

    def agent(
        self,
        name: str,
        *,
        model: ModelConfig | Mapping[str, Any] | BaseChatModel,
        tools: Sequence[ToolRefSpec | BaseTool] = (),
        **config: Any,
    ) -> Agent:
        """An agent loop on ``model`` with ``tools`` (tool-set names, import paths or tools).

        ``config`` takes the keys of a flow file's agent (``max_turns``,
        ``keep_tool_results``, ``role``, ``objective``, ...). A ``BaseChatModel``
        is used as a native-protocol model.
        """
        if config.get("sub_agents"):
            raise ValueError(
                f"agent {name!r}: sub_agents belong to flow files; in a custom graph,"
                " wire agents together with graph edges"
            )
        agent_config = AgentConfig.model_validate({"model": "custom", **config})
        refs = [t for t in tools if not isinstance(t, BaseTool)]
        resolved = resolve_tools(refs, replace(self._tools, models=self.models))
        resolved += [t for t in tools if isinstance(t, BaseTool)]
        if isinstance(model, BaseChatModel):
            chat, settings = model, None
        else:
            settings = ModelConfig.model_validate(model)
            chat = build_chat_model(settings)
        loop = AgentLoop(
            name=name,
            config=agent_config,
            model=chat,
            tools=resolved,
            tools_in_prompt=settings is not None and settings.protocol == "mirothinker",
            base_url=settings.base_url if settings else "",
            blobs=self.blobs,
            retry=RetryPolicy(max_retries=settings.max_retries, base_s=settings.retry_base_s)
            if settings
            else RetryPolicy(),
            context_tokens=settings.context_tokens if settings else None,
            max_tokens=settings.max_tokens if settings else None,
            **({"today": self.today} if self.today else {}),
        )
        self.agents.append(loop)
        return Agent(name, loop, loop.build().compile(name=name))

    @property
    def recursion_limit(self) -> int:
        """The largest step budget of the graph or any of its agents."""
        limits = [
            recursion_limit(
                a.config.max_turns, restarts=a.restarts, rollbacks=a.config.max_rollbacks
            )
            for a in self.agents
        ]
        return max([self.graph_steps, *limits])

    async def aclose(self) -> None:
        for loop in self.agents:
            await loop.aclose()
        await self._tools.aclose()
