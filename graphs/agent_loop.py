"""One agent as a LangGraph graph: model turn, tool calls, results, again; then close.

    start -> model -> tools -> model -> ... -> close -> END

An agent with sub-agents sends each sub-agent call of a reply to that
sub-agent's node (``Send``), where it runs as a subgraph, in parallel with the
reply's other calls; ``collect`` then appends all results in call order:

    model -> {tools, agent_<name> x n} -> collect -> model

Each node is one checkpointed step (the graph runs with ``durability="sync"``),
so a killed run resumes at the step in flight and never repeats a completed
turn. Where to go after a step is read from the state alone (``next_step``),
so a state edited between steps (LangGraph Studio's "edit state",
``update_state``) carries on from what it holds. Inside the model step:
- server errors are retried with backoff;
- replies cut by ``max_tokens`` are asked again with a larger budget;
- rollbacks (malformed calls, refusals, loops, repeated queries) are resampled
  without counting a turn.
The closing request asks for the answer (or a sub-agent's report) with no
more tools.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import InvalidToolCall, ToolCall
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.tracers.context import _tracing_v2_is_enabled as tracing_v2_is_enabled
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from mirograph.agents import prompts
from mirograph.agents.errors import ContextOverflowError, classify_model_error
from mirograph.agents.mirothinker.boxed import extract_boxed
from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel
from mirograph.agents.mirothinker.thinking import split_thinking
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.tools.base import DEDUPE_KEY, server_of, tool_specs
from mirograph.graphs.config import AgentConfig
from mirograph.graphs.reply_checks import query_keys, rollback_reason
from mirograph.graphs.run_control import agent_namespace, current_control
from mirograph.graphs.sub_agents import SubAgent, delegate_node, delegated, node_name
from mirograph.graphs.tool_runner import ToolReport, ToolRunner
from mirograph.state.blobs import BlobStore, hydrate, offload
from mirograph.state.messages import new_id
from mirograph.state.redact import scrub, secret_values
from mirograph.state.retention import RetentionWindow
from mirograph.state.schema import AgentInput, AgentOutput, AgentState, AgentStats, empty_stats
from mirograph.text import clip, describe

#: Conservative characters per token, for the context estimate before /tokenize.
CHARS_PER_TOKEN = 3.0


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
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: The model's context and reply budget; the guard closes the agent before overflow.
    context_tokens: int | None = None
    #: The model's reply budget (None: the model's own setting, unknown to the guard).
    max_tokens: int | None = None
    today: str = field(default_factory=lambda: date.today().isoformat())
    #: Agents this one may call, each as a tool on server ``agent-<name>``.
    sub_agents: Sequence[SubAgent] = ()
    #: Whether a parent calls this agent: its closing request asks for a report.
    is_sub_agent: bool = False

    def __post_init__(self) -> None:
        default_role = "sub-agent" if self.is_sub_agent else "main"
        self.role = self.config.role or (
            self.name if self.name in prompts.OBJECTIVES else default_role
        )
        tools = [*self.tools, *(sub.tool for sub in self.sub_agents)]
        self._all_tools = tools
        self._bound = self.model.bind_tools(tools) if tools else self.model
        self._servers = {tool.name: server_of(tool) for tool in tools}
        self._dedupe = {
            tool.name: list((tool.metadata or {})[DEDUPE_KEY])
            for tool in tools
            if (tool.metadata or {}).get(DEDUPE_KEY)
        }
        self._agents_by_tool = {sub.tool.name: sub.name for sub in self.sub_agents}
        self._runner = ToolRunner(
            tools, timeout_s=self.config.tool_timeout_s, max_chars=self.config.max_result_chars
        )
        block = self.config.retention_block if self.config.retention == "blocks" else 1
        self._window = RetentionWindow(self.config.keep_tool_results, block)
        #: Seconds of tool calls not yet added to the counters, per agent call.
        self._tool_seconds: dict[tuple[str, str], float] = {}

    def build(self) -> StateGraph:
        graph = StateGraph(AgentState, input_schema=AgentInput, output_schema=AgentOutput)
        graph.add_node("start", self.start)
        graph.add_node("model", self.call_model)
        graph.add_node("tools", self.run_tools)
        graph.add_node("close", self.close)
        subs = [node_name(sub.name) for sub in self.sub_agents]
        if subs:
            graph.add_node("collect", self.collect)
            for sub in self.sub_agents:
                graph.add_node(node_name(sub.name), delegate_node(sub, self.name))
                graph.add_edge(node_name(sub.name), "collect")
        # Routed from the state, not by a Command the node returns: a state
        # edited "as" a node (which has no Command) goes on the same way.
        targets = ["model", "tools", "close", *(["collect", *subs] if subs else [])]
        router = _Untraced(self.next_step)
        for node in ("model", "tools", *(["collect"] if subs else [])):
            graph.add_conditional_edges(node, router, targets)
        graph.add_edge(START, "start")
        graph.add_edge("start", "model")
        graph.add_edge("close", END)
        return graph

    def next_step(self, state: AgentState) -> str | list[Send | str]:
        """Where the agent goes after a model, tools or collect step, from its state:
        the closing request once the phase says so; the calls of a reply not yet
        answered (its sub-agent calls to their nodes, the rest to ``tools``), or
        ``collect`` while their results gather; otherwise the model."""
        if state.get("phase") == "close":
            return "close"
        last = state["messages"][-1] if state.get("messages") else None
        if not isinstance(last, AIMessage) or not (last.tool_calls or last.invalid_tool_calls):
            return "model"
        if state.get("results"):
            return "collect"  # this turn's sub-agents report to collect on their own
        if delegations := delegated(last, self._agents_by_tool):
            return self._fan_out(last, delegations)
        return "tools"

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
        question = _question(state)
        specs = tool_specs(self._all_tools) if self.tools_in_prompt else []
        system = prompts.system_prompt(
            today=self.today,
            role=self.role,
            tools=specs,
            objective=self.config.objective,
            template=self.config.system_prompt_template,
        )
        return {
            "messages": [
                SystemMessage(system, id=new_id()),
                HumanMessage(prompts.task_message(question, role=self.role), id=new_id()),
            ],
            "agent": self.name,
            "stats": empty_stats(),
            "phase": "work",
            "rollback_streak": 0,
            "boxed": None,
            "answer": None,
            "stop_reason": None,
        }

    async def call_model(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        stats = _stats(state)
        control = current_control()
        if control is not None:
            control.check_pause()  # the step before this one is checkpointed
        self._take_tool_time(config, stats)
        if control is not None and (budget := control.over_budget()):
            self._emit(config, "budget_reached", budget=budget, turn=stats["turns"])
            return _close(stats, budget)
        view = await self._view(state["messages"])
        # Room is kept for the closing request, which must still fit after this turn.
        closing = prompts.closing_request(state["question"], role=self.role)
        reserve = int(len(closing) / CHARS_PER_TOKEN) + 16
        if not await self._fits(view, reserve=reserve):
            return _close(stats, "context_limit")
        seen = set(state.get("queries") or ())
        streak = state.get("rollback_streak", 0)
        duplicates: dict[str, int] = {}
        max_tokens: int | None = None  # the model's own budget, until a reply is cut
        length_retries = 0
        cut: AIMessage | None = None  # the last reply cut by max_tokens
        while True:
            started = time.perf_counter()
            try:
                reply = await self._invoke(view, config, stats, tools=True, max_tokens=max_tokens)
            except ContextOverflowError:
                if cut is None:
                    return _close(stats, "context_overflow")
                # Only the larger reply budget did not fit: keep the reply that was cut.
                reply, length_retries = cut, self.config.max_length_retries
                started = None
            else:
                _count_usage(stats, reply)
            if (
                reply.response_metadata.get("finish_reason") == "length"
                and length_retries < self.config.max_length_retries
                and (larger := self._larger_budget(max_tokens, view, reserve)) is not None
            ):
                length_retries += 1
                stats["length_retries"] += 1
                self._model_event(config, stats, started, reply, "cut", "reply cut by max_tokens")
                cut, max_tokens = reply, larger
                continue
            repeated = [k for k in query_keys(reply, self._dedupe) if k in seen]
            insisting = [
                k for k in repeated if duplicates.get(k, 0) >= self.config.max_duplicate_rollbacks
            ]
            reason = rollback_reason(reply, [k for k in repeated if k not in insisting])
            self._model_event(config, stats, started, reply, "rollback" if reason else "ok", reason)
            if reason is None:
                break
            for key in repeated:
                duplicates[key] = duplicates.get(key, 0) + 1
            stats["rollbacks"] += 1
            streak += 1
            if streak > self.config.max_rollbacks:
                return _close(stats, "too_many_rollbacks", rollback_streak=streak)
        reply = _redacted(_with_unique_call_ids(reply))
        stats["turns"] += 1
        stats["tool_calls"] += len(reply.tool_calls) + len(reply.invalid_tool_calls)
        update: dict[str, Any] = {"messages": [reply], "stats": stats, "rollback_streak": 0}
        if new_queries := [k for k in query_keys(reply, self._dedupe) if k not in seen]:
            update["queries"] = new_queries
        boxed = extract_boxed(split_thinking(reply.text)[1])
        if boxed is not None:
            update["boxed"] = boxed
        if not reply.tool_calls and not reply.invalid_tool_calls:
            update["phase"] = "close"
            update["stop_reason"] = "answered"
        return update

    def _fan_out(self, reply: AIMessage, delegations: list[Any]) -> list[Any]:
        """Each sub-agent call to its node; the reply's other calls to ``tools``."""
        order = {call["id"]: i for i, call in enumerate(reply.tool_calls)}
        goto: list[Any] = []
        for call, agent in delegations:
            task = {"call_id": call["id"], "subtask": call["args"]["subtask"]}
            goto.append(Send(node_name(agent), {**task, "order": order[call["id"]]}))
        if len(delegations) < len(reply.tool_calls) or reply.invalid_tool_calls:
            goto.append("tools")
        return goto

    async def run_tools(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        control = current_control()
        if control is not None:
            control.check_pause()
        reply = state["messages"][-1]
        assert isinstance(reply, AIMessage)
        turn = _stats(state)["turns"]
        report = self._tool_reporter(config, turn) if control is not None else None
        started = time.perf_counter()
        if delegations := delegated(reply, self._agents_by_tool):
            # Sub-agents run beside this node; ``collect`` merges all results in order.
            sent = {call["id"] for call, _ in delegations}
            rest = reply.model_copy(
                update={"tool_calls": [c for c in reply.tool_calls if c["id"] not in sent]}
            )
            order = {call["id"]: i for i, call in enumerate(reply.tool_calls)}
            pending = {}
            for i, result in enumerate(await self._runner.run(rest, report)):
                position = order.get(result.tool_call_id, len(reply.tool_calls) + i)
                pending[result.tool_call_id] = {"message": result, "order": position}
            self._add_tool_time(config, time.perf_counter() - started)
            return {"results": pending}
        results = await self._runner.run(reply, report)
        self._add_tool_time(config, time.perf_counter() - started)
        results = [await offload(r, self.blobs) for r in results]
        return self._after_results(state, {"messages": results})

    def _add_tool_time(self, config: RunnableConfig, seconds: float) -> None:
        """Tool time waits in memory for the agent's next model or closing step,
        which writes the counters anyway: one more channel write per tool step
        costs ~1 ms a turn. A crash in between loses that one step's seconds."""
        key = _call_key(config)
        self._tool_seconds[key] = self._tool_seconds.get(key, 0.0) + seconds

    def _take_tool_time(self, config: RunnableConfig, stats: AgentStats) -> None:
        if seconds := self._tool_seconds.pop(_call_key(config), 0.0):
            stats["wall_seconds"] = round(stats["wall_seconds"] + seconds, 3)

    async def collect(self, state: AgentState) -> dict[str, Any]:
        """Append one turn's results, sub-agent reports included, in call order."""
        control = current_control()
        if control is not None:
            control.check_pause()
        pending = sorted((state.get("results") or {}).values(), key=lambda r: r["order"])
        messages = [await offload(self._within_budget(r["message"]), self.blobs) for r in pending]
        invocations = [record for r in pending for record in r.get("invocations", ())]
        update: dict[str, Any] = {"messages": messages, "results": None}
        if invocations:
            update["invocations"] = invocations
        return self._after_results(state, update)

    def _within_budget(self, message: ToolMessage) -> ToolMessage:
        """A sub-agent's report held to the same result budget as any tool result."""
        text = message.text
        cut = self._runner.truncate(text)
        return message if cut is text else message.model_copy(update={"content": cut})

    def _after_results(self, state: AgentState, update: dict[str, Any]) -> dict[str, Any]:
        if _stats(state)["turns"] >= self.config.max_turns:
            update["phase"] = "close"
            update["stop_reason"] = "max_turns"
        return update

    async def close(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """The closing request: summary and final answer (or report), no tools."""
        stats = _stats(state)
        self._take_tool_time(config, stats)
        request = HumanMessage(
            prompts.closing_request(state["question"], role=self.role), id=new_id()
        )
        history = list(state["messages"])
        if state.get("stop_reason") == "context_overflow":
            history = _without_last_turn(history)  # the turn whose result overflowed
        started = time.perf_counter()
        reply = await self._closing_reply([*history, request], config, stats)
        answer: str | None
        if reply is None:
            answer, new = state.get("boxed"), [request]
        else:
            _count_usage(stats, reply)
            reply = _redacted(reply)
            self._model_event(config, stats, started, reply, "ok", phase="close")
            visible = split_thinking(reply.text)[1]
            if self.role == "main":
                answer = extract_boxed(visible) or state.get("boxed")
            else:
                answer = visible or state.get("boxed")
            new = [request, reply]
        stop_reason = state.get("stop_reason") or "answered"
        if not (answer or "").strip():
            stop_reason = _why_no_answer(stop_reason, reply)
        return {
            "messages": new,
            "stats": stats,
            "answer": answer,
            "phase": "done",
            "stop_reason": stop_reason,
        }

    # -- events ---------------------------------------------------------------

    def _emit(self, config: RunnableConfig, event: str, **fields: Any) -> None:
        control = current_control()
        if control is not None:
            control.emit(event, agent=self.name, ns=agent_namespace(config), **fields)

    def _model_event(
        self,
        config: RunnableConfig,
        stats: AgentStats,
        started: float | None,
        reply: AIMessage,
        outcome: str,
        detail: str | None = None,
        *,
        phase: str = "work",
    ) -> None:
        """One model call: counted into the agent's time, reported as an event.

        ``started`` None: a reply already reported (a cut reply kept after the
        larger budget overflowed), not reported twice.
        """
        if started is None:
            return
        latency = time.perf_counter() - started
        stats["wall_seconds"] = round(stats["wall_seconds"] + latency, 3)
        if current_control() is None:
            return
        usage = reply.usage_metadata or {}
        self._emit(
            config,
            "model_call",
            turn=stats["turns"] + (1 if phase == "work" else 0),
            max_turns=self.config.max_turns,
            phase=phase,
            latency_ms=round(latency * 1000, 1),
            prompt_tokens=usage.get("input_tokens", 0),
            completion_tokens=usage.get("output_tokens", 0),
            cached_tokens=(usage.get("input_token_details") or {}).get("cache_read", 0) or 0,
            outcome=outcome,
            detail=detail,
            tool_calls=[c["name"] for c in reply.tool_calls],
            finish_reason=reply.response_metadata.get("finish_reason"),
        )

    def _tool_reporter(self, config: RunnableConfig, turn: int) -> ToolReport:
        def report(call: ToolCall | InvalidToolCall, result: ToolMessage, seconds: float) -> None:
            name = call.get("name") or "unknown"
            self._emit(
                config,
                "tool_call",
                turn=turn,
                tool=name,
                server=self._servers.get(name, "unknown"),
                latency_ms=round(seconds * 1000, 1),
                outcome="error" if result.status == "error" else "ok",
                args=_preview(call.get("args"), 160),
                result=_preview(result.text, 200),
                chars=len(result.text),
            )

        return report

    # -- helpers --------------------------------------------------------------

    async def _view(self, history: Sequence[BaseMessage]) -> list[BaseMessage]:
        """What the model is shown: keep-K applied, kept results read back from blobs."""
        view = self._window.view(history)
        return await hydrate(view, self.blobs, only=self._window.kept_results())

    async def _fits(self, view: Sequence[BaseMessage], reserve: int = 0) -> bool:
        """Whether the next call can fit: an estimate first, vLLM's count when close."""
        if not self.context_tokens:
            return True
        budget = self.context_tokens - (self.max_tokens or 0) - reserve
        if _estimate_tokens(view) <= budget:
            return True
        exact = None
        if isinstance(self.model, MiroThinkerChatModel):
            exact = await self.model.count_tokens(view)
        return exact is not None and exact <= budget

    def _larger_budget(
        self, current: int | None, view: Sequence[BaseMessage], reserve: int
    ) -> int | None:
        """Twice the reply budget, within what the prompt leaves free; None if it cannot grow."""
        current = current or self.max_tokens or 4096
        larger = current * 2
        if self.context_tokens:
            larger = min(larger, self.context_tokens - _estimate_tokens(view) - reserve)
        return larger if larger > current else None

    async def _invoke(
        self,
        messages: Sequence[BaseMessage],
        config: RunnableConfig,
        stats: AgentStats,
        *,
        tools: bool = False,
        max_tokens: int | None = None,
    ) -> AIMessage:
        """One model reply, retried with backoff on server errors (then the run pauses)."""

        async def once() -> AIMessage:
            try:
                return await self._call(messages, config, tools, max_tokens)
            except Exception as exc:
                mapped = classify_model_error(exc, self.base_url)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc

        def count_retry() -> None:
            stats["retries"] += 1

        try:
            reply = await self.retry.call(once, count_retry)
        except Exception as exc:
            self._emit(
                config,
                "model_call",
                turn=stats["turns"] + (1 if tools else 0),
                max_turns=self.config.max_turns,
                phase="work" if tools else "close",
                outcome="error",
                detail=describe(exc, 300),
            )
            raise
        if not reply.id:
            reply.id = new_id()
        return reply

    async def _call(
        self,
        messages: Sequence[BaseMessage],
        config: RunnableConfig,
        tools: bool,
        max_tokens: int | None,
    ) -> AIMessage:
        if isinstance(self.model, MiroThinkerChatModel) and not _observed(config):
            # Nobody traces or streams this call: skip LangChain's per-message
            # bookkeeping, which grows with the history, and call the model directly.
            servers = self._servers if tools else {}
            return await self.model.areply(messages, servers, max_tokens=max_tokens)
        model: Any = self._bound if tools else self.model
        if max_tokens:
            model = model.bind(max_tokens=max_tokens)
        reply = await model.ainvoke(list(messages), config)
        assert isinstance(reply, AIMessage)
        return reply

    async def _closing_reply(
        self, history: list[BaseMessage], config: RunnableConfig, stats: AgentStats
    ) -> AIMessage | None:
        """Ask for the answer; without the newest turn when the whole history cannot fit.

        At most two requests: never an endless resend of an overflowing prompt.
        """
        request = history[-1]
        trimmed = [*_without_last_turn(history[:-1]), request]
        candidates = [history] if len(trimmed) == len(history) else [history, trimmed]
        for i, candidate in enumerate(candidates):
            view = await self._view(candidate)
            if i + 1 < len(candidates) and not await self._fits(view):
                continue  # predicted overflow: go straight to the trimmed history
            try:
                return await self._invoke(view, config, stats)
            except ContextOverflowError:
                continue
        return None


class _Untraced(Runnable[Any, Any]):
    """A pure routing function as a runnable that calls it directly.

    LangGraph wraps a plain function given as a conditional edge in a traced
    runnable: callbacks and an asyncio task per call (and a worker thread for
    a sync one), some 0.3 ms a step. Routing is a few dictionary reads.
    """

    def __init__(self, route: Callable[[Any], Any]) -> None:
        self._route = route
        self.name = route.__name__

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._route(input)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._route(input)


def _preview(value: Any, width: int) -> str:
    """A one-line, bounded rendering of tool arguments or a result, for events."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return clip(value, width)


def _estimate_tokens(messages: Sequence[BaseMessage]) -> int:
    """A conservative token count of a prompt.

    The server's own count for the previous request, plus its reply, gives the
    prompt up to the newest assistant message exactly. Only what came after it
    (this turn's results) is estimated, at characters / CHARS_PER_TOKEN. That
    keeps the check O(1) in the history's length. A history without reported
    usage is estimated whole.
    """
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, AIMessage):
            usage = message.usage_metadata
            if usage and usage.get("input_tokens"):
                counted = usage["input_tokens"] + usage.get("output_tokens", 0)
                return counted + _chars_estimate(messages[i + 1 :])
            break
    return _chars_estimate(messages)


def _chars_estimate(messages: Sequence[BaseMessage]) -> int:
    chars = sum(len(m.content) if isinstance(m.content, str) else len(m.text) for m in messages)
    return int(chars / CHARS_PER_TOKEN) + 8 * len(messages)


def _close(stats: AgentStats, reason: str, **extra: Any) -> dict[str, Any]:
    """The update that sends the agent to its closing request, saying why."""
    return {"stats": stats, "phase": "close", "stop_reason": reason, **extra}


def _why_no_answer(stop_reason: str, reply: AIMessage | None) -> str:
    """Why an agent ended without an answer: what closed it early (rollbacks,
    context, turns, a budget) when that says it; else what its closing reply was."""
    if stop_reason != "answered":
        return stop_reason
    if reply is None:
        return "context_overflow"  # the closing request itself did not fit
    if reply.response_metadata.get("finish_reason") == "length":
        return "reply_cut"
    if not split_thinking(reply.text)[1].strip():
        return "empty_reply"
    return "no_boxed_answer"


def _question(state: AgentState) -> str:
    """The question the agent starts on; a one-line error when the input has none."""
    question = state.get("question")
    if question is None:
        raise ValueError("the input has no 'question'; pass {'question': '...'}")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(
            f"the input's 'question' is {'empty' if isinstance(question, str) else 'not text'};"
            " pass {'question': '...'}"
        )
    return question


def _without_last_turn(history: list[BaseMessage]) -> list[BaseMessage]:
    """The history without its newest assistant call and that call's results."""
    end = len(history)
    while end > 0 and isinstance(history[end - 1], ToolMessage):
        end -= 1
    if end == len(history) or end == 0 or not isinstance(history[end - 1], AIMessage):
        return history
    return history[: end - 1]


def _call_key(config: RunnableConfig) -> tuple[str, str]:
    """One agent call in one run: the thread and the agent's checkpoint namespace."""
    configurable = config.get("configurable") or {}
    return str(configurable.get("thread_id", "")), agent_namespace(config)


def _observed(config: RunnableConfig) -> bool:
    """Whether a callback handler (streaming, tracing) should see this model call."""
    callbacks = config.get("callbacks")
    handlers = getattr(callbacks, "handlers", callbacks)
    return bool(handlers) or bool(tracing_v2_is_enabled())


def _stats(state: AgentState) -> AgentStats:
    """The agent's counters, with any added since the checkpoint was written."""
    return AgentStats(**{**empty_stats(), **(state.get("stats") or {})})


def _count_usage(stats: AgentStats, reply: AIMessage) -> None:
    stats["model_calls"] += 1
    usage = reply.usage_metadata
    if not usage:
        return
    stats["prompt_tokens"] += usage.get("input_tokens", 0)
    stats["completion_tokens"] += usage.get("output_tokens", 0)
    stats["cached_tokens"] += (usage.get("input_token_details") or {}).get("cache_read", 0) or 0


def _redacted(reply: AIMessage) -> AIMessage:
    """The reply as it is stored: a secret of this environment that the model
    repeated (one pasted in a question, say) is masked. Only exact values are
    masked, never key-shaped words: the stored reply is what tools run and what
    the answer is read from."""
    secrets = secret_values()
    fields = {
        "content": reply.content,
        "tool_calls": reply.tool_calls,
        "invalid_tool_calls": reply.invalid_tool_calls,
        "additional_kwargs": reply.additional_kwargs,
    }
    if not secrets or not any(
        secret in json.dumps(fields, ensure_ascii=False, default=str) for secret in secrets
    ):
        return reply
    return reply.model_copy(update=scrub(fields, shapes=False))


def _with_unique_call_ids(reply: AIMessage) -> AIMessage:
    """Results are matched to calls by id: give a missing or repeated id a fresh one."""
    ids = [c.get("id") for c in reply.tool_calls]
    if all(ids) and len(set(ids)) == len(ids):
        return reply
    seen: set[str] = set()
    calls = []
    for call in reply.tool_calls:
        call_id = call.get("id")
        if not call_id or call_id in seen:
            call = {**call, "id": new_id()}
        seen.add(call["id"])
        calls.append(call)
    return reply.model_copy(update={"tool_calls": calls})
