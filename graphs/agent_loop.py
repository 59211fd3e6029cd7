"""One agent as a LangGraph graph: model turn, tool calls, results, again; then close.

    start -> model -> tools -> model -> ... -> close -> END

Each node is one checkpointed step (the graph runs with ``durability="sync"``),
so a killed run resumes at the step in flight and never repeats a completed
turn. Rollbacks (replies with tag fragments or only malformed calls) are
resampled inside the model step and do not count as turns.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.tracers.context import _tracing_v2_is_enabled as tracing_v2_is_enabled
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from mirograph.agents import prompts
from mirograph.agents.errors import ContextOverflowError, classify_model_error
from mirograph.agents.mirothinker.boxed import extract_boxed
from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel
from mirograph.agents.mirothinker.thinking import split_thinking
from mirograph.agents.tools.base import server_of, tool_specs
from mirograph.graphs.config import AgentConfig
from mirograph.graphs.tool_runner import ToolRunner
from mirograph.state.blobs import BlobStore, hydrate, offload
from mirograph.state.retention import RetentionWindow, result_groups
from mirograph.state.schema import (
    AgentInput,
    AgentOutput,
    AgentState,
    AgentStats,
    empty_stats,
)


@dataclass
class AgentLoop:
    """Builds the graph of one agent; ``build()`` returns an uncompiled ``StateGraph``."""

    name: str
    config: AgentConfig
    model: BaseChatModel
    tools: Sequence[BaseTool] = ()
    #: True for the MiroThinker protocol (tools in the system prompt); False for native.
    tools_in_prompt: bool = True
    base_url: str = ""
    #: Where long tool results go (the run's store); None keeps them inline.
    blobs: BlobStore | None = None
    today: str = field(default_factory=lambda: date.today().isoformat())

    def __post_init__(self) -> None:
        self.role = self.config.role or (self.name if self.name in prompts.OBJECTIVES else "main")
        self._bound = self.model.bind_tools(list(self.tools)) if self.tools else self.model
        self._servers = {tool.name: server_of(tool) for tool in self.tools}
        self._runner = ToolRunner(
            self.tools, timeout_s=self.config.tool_timeout_s, max_chars=self.config.max_result_chars
        )
        self._window = RetentionWindow(self.config.keep_tool_results)

    def build(self) -> StateGraph:
        graph = StateGraph(AgentState, input_schema=AgentInput, output_schema=AgentOutput)
        graph.add_node("start", self.start)
        # Model and tools route themselves with Command(goto=...): a separate
        # router would be one more runnable for LangGraph to run every step.
        graph.add_node("model", self.call_model, destinations=("tools", "close"))
        graph.add_node("tools", self.run_tools, destinations=("model", "close"))
        graph.add_node("close", self.close)
        graph.add_edge(START, "start")
        graph.add_edge("start", "model")
        graph.add_edge("close", END)
        return graph

    async def aclose(self) -> None:
        """Release the model's connections (call before the event loop ends)."""
        close = getattr(self.model, "aclose", None)
        if close is not None:
            await close()

    # -- nodes ----------------------------------------------------------------

    async def start(self, state: AgentState) -> dict[str, Any]:
        """Render the system prompt once: a resumed run sends the identical prefix."""
        if state.get("messages"):
            return {}
        specs = tool_specs(self.tools) if self.tools_in_prompt else []
        system = prompts.system_prompt(
            today=self.today,
            role=self.role,
            tools=specs,
            objective=self.config.objective,
            template=self.config.system_prompt_template,
        )
        return {
            "messages": [
                SystemMessage(system, id=_id()),
                HumanMessage(prompts.task_message(state["question"]), id=_id()),
            ],
            "stats": empty_stats(),
            "phase": "work",
            "rollback_streak": 0,
            "boxed": None,
            "answer": None,
            "stop_reason": None,
        }

    async def call_model(self, state: AgentState, config: RunnableConfig) -> Command[Any]:
        stats = AgentStats(**state.get("stats", empty_stats()))
        streak = state.get("rollback_streak", 0)
        view = await self._view(state["messages"])
        while True:
            try:
                reply = await self._invoke(view, config, with_tools=True)
            except ContextOverflowError:
                return _route(
                    {"stats": stats, "phase": "close", "stop_reason": "context_overflow"}, "tools"
                )
            _count_usage(stats, reply)
            if not needs_rollback(reply):
                break
            stats["rollbacks"] += 1
            streak += 1
            if streak > self.config.max_rollbacks:
                return _route(
                    {
                        "stats": stats,
                        "rollback_streak": streak,
                        "phase": "close",
                        "stop_reason": "too_many_rollbacks",
                    },
                    "tools",
                )
        stats["turns"] += 1
        stats["tool_calls"] += len(reply.tool_calls) + len(reply.invalid_tool_calls)
        update: dict[str, Any] = {"messages": [reply], "stats": stats, "rollback_streak": 0}
        boxed = extract_boxed(split_thinking(reply.text)[1])
        if boxed is not None:
            update["boxed"] = boxed
        if not reply.tool_calls and not reply.invalid_tool_calls:
            update["phase"] = "close"
            update["stop_reason"] = "answered"
        return _route(update, "tools")

    async def run_tools(self, state: AgentState) -> Command[Any]:
        reply = state["messages"][-1]
        assert isinstance(reply, AIMessage)
        results = [await offload(r, self.blobs) for r in await self._runner.run(reply)]
        update: dict[str, Any] = {"messages": results}
        if state.get("stats", empty_stats())["turns"] >= self.config.max_turns:
            update["phase"] = "close"
            update["stop_reason"] = "max_turns"
        return _route(update, "model")

    async def close(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """The closing request: summary and final answer (or report), no tools."""
        stats = AgentStats(**state.get("stats", empty_stats()))
        request = HumanMessage(prompts.closing_request(state["question"], role=self.role), id=_id())
        history = [*state["messages"], request]
        reply = await self._closing_reply(history, config)
        answer: str | None
        if reply is None:
            answer, new = state.get("boxed"), [request]
        else:
            _count_usage(stats, reply)
            visible = split_thinking(reply.text)[1]
            if self.role == "main":
                answer = extract_boxed(visible) or state.get("boxed")
            else:
                answer = visible or state.get("boxed")
            new = [request, reply]
        return {
            "messages": new,
            "stats": stats,
            "answer": answer,
            "phase": "done",
            "stop_reason": state.get("stop_reason") or "answered",
        }

    # -- helpers --------------------------------------------------------------

    async def _view(self, history: Sequence[BaseMessage]) -> list[BaseMessage]:
        """What the model is shown: keep-K applied, kept results read back from blobs."""
        view = self._window.view(history)
        return await hydrate(view, self.blobs, only=self._window.kept_results())

    async def _invoke(
        self, messages: Sequence[BaseMessage], config: RunnableConfig, *, with_tools: bool = False
    ) -> AIMessage:
        try:
            if isinstance(self.model, MiroThinkerChatModel) and not _observed(config):
                # Nobody traces or streams this call: skip LangChain's per-message
                # bookkeeping, which grows with the history, and call the model directly.
                servers = self._servers if with_tools else {}
                reply = await self.model.areply(messages, servers)
            else:
                model = self._bound if with_tools else self.model
                reply = await model.ainvoke(list(messages), config)
        except Exception as exc:
            mapped = classify_model_error(exc, self.base_url)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc
        if not reply.id:
            reply.id = _id()
        return reply

    async def _closing_reply(
        self, history: list[BaseMessage], config: RunnableConfig
    ) -> AIMessage | None:
        """Ask for the answer; on a context overflow drop the newest results once."""
        try:
            return await self._invoke(await self._view(history), config)
        except ContextOverflowError:
            groups = result_groups(history)
            if len(groups) < 2:
                return None
            drop = set(groups[-2])
            trimmed = [m for i, m in enumerate(history) if i not in drop]
            try:
                return await self._invoke(await self._view(trimmed), config)
            except ContextOverflowError:
                return None


def _route(update: dict[str, Any], default: str) -> Command[Any]:
    """Apply ``update`` and go on to ``default``, or to the closing request."""
    return Command(update=update, goto="close" if update.get("phase") == "close" else default)


def _observed(config: RunnableConfig) -> bool:
    """Whether a callback handler (streaming, tracing) should see this model call."""
    callbacks = config.get("callbacks")
    handlers = getattr(callbacks, "handlers", callbacks)
    return bool(handlers) or tracing_v2_is_enabled()


def needs_rollback(reply: AIMessage) -> bool:
    """A reply with protocol fragments but nothing to execute is resampled."""
    if reply.tool_calls:
        return False
    return bool(reply.invalid_tool_calls) or bool(reply.response_metadata.get("stray_tags"))


def _count_usage(stats: AgentStats, reply: AIMessage) -> None:
    stats["model_calls"] += 1
    usage = reply.usage_metadata
    if not usage:
        return
    stats["prompt_tokens"] += usage.get("input_tokens", 0)
    stats["completion_tokens"] += usage.get("output_tokens", 0)
    stats["cached_tokens"] += (usage.get("input_token_details") or {}).get("cache_read", 0) or 0


def _id() -> str:
    return uuid.uuid4().hex
