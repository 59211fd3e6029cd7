"""One agent as a LangGraph graph: model turn, tool calls, results, again; then close.

    start -> model -> tools -> model -> ... -> close -> END

An entry agent with ``max_restarts`` whose attempt ends with no boxed answer
goes on to ``restart`` (``graphs.attempts``) and works again from the task:

    ... -> close -> restart -> model -> ... -> close -> END

An agent with sub-agents sends each sub-agent call of a reply to that
sub-agent's node (``Send``), where it runs as a subgraph, in parallel with the
reply's other calls; ``collect`` then appends all results in call order:

    model -> {tools, agent_<name> x n} -> collect -> model

Each node is one checkpointed step (the graph runs with ``durability="sync"``),
so a killed run resumes at the step in flight and never repeats a completed
turn. Where to go after a step is read from the state alone (``next_step``),
so a state edited between steps (LangGraph Studio's "edit state",
``update_state``) carries on from what it holds. What a model step does
(retries, replies cut by ``max_tokens``, rollbacks) is ``graphs.model_step``'s;
a turn whose tool results are an error or an empty search is rolled back after
them (``graphs.result_checks``): the reply is removed from the history, so the
model is asked again on what it had.
The closing request asks for the answer (or a sub-agent's report) with no
more tools.

``AgentLoop`` is built once per agent and holds its configuration: what belongs
to a run lives in the run's state, except tool seconds that wait for the next
model step (``graphs.tool_time``: a ledger of this graph's, kept by run and
agent call, and freed with the graph, which the runner builds per session).
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import InvalidToolCall, ToolCall
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from mirograph.agents import prompts
from mirograph.agents.mirothinker.boxed import extract_boxed
from mirograph.agents.mirothinker.thinking import split_thinking
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.tools.base import DEDUPE_KEY, server_of, tool_specs
from mirograph.graphs import attempts
from mirograph.graphs.config import AgentConfig
from mirograph.graphs.model_step import (
    CHARS_PER_TOKEN,
    CONTEXT_FULL,
    ModelStep,
    close_update,
    count_usage,
    emit_event,
)
from mirograph.graphs.reply_checks import query_key
from mirograph.graphs.result_checks import result_rollback_reason
from mirograph.graphs.run_control import current_control
from mirograph.graphs.slips import SlipRepairs
from mirograph.graphs.sub_agents import SubAgent, delegate_node, delegated, node_name
from mirograph.graphs.tool_runner import ToolReport, ToolRunner
from mirograph.graphs.tool_time import PendingToolTime
from mirograph.state.blobs import BlobStore, offload
from mirograph.state.messages import new_id
from mirograph.state.redact import redact_reply
from mirograph.state.retention import RetentionWindow
from mirograph.state.schema import AgentInput, AgentOutput, AgentState, AgentStats, empty_stats
from mirograph.text import clip

__all__ = ["CHARS_PER_TOKEN", "AgentLoop"]


@dataclass(frozen=True, eq=False)
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
    #: Derived once from the fields above (set by ``__post_init__``).
    role: str = field(init=False)
    model_step: ModelStep = field(init=False, repr=False)
    _all_tools: list[BaseTool] = field(init=False, repr=False)
    _servers: dict[str, str] = field(init=False, repr=False)
    _agents_by_tool: dict[str, str] = field(init=False, repr=False)
    _runner: ToolRunner = field(init=False, repr=False)
    _tool_time: PendingToolTime = field(init=False, repr=False)

    def __post_init__(self) -> None:
        default_role = "sub-agent" if self.is_sub_agent else "main"
        role = self.config.role or (self.name if self.name in prompts.OBJECTIVES else default_role)
        tools = [*self.tools, *(sub.tool for sub in self.sub_agents)]
        servers = {tool.name: server_of(tool) for tool in tools}
        block = self.config.retention_block if self.config.retention == "blocks" else 1
        slips = SlipRepairs(tools)
        step = ModelStep(
            agent=self.name,
            role=role,
            config=self.config,
            model=self.model,
            bound=self.model.bind_tools(tools) if tools else self.model,
            servers=servers,
            dedupe={
                tool.name: list((tool.metadata or {})[DEDUPE_KEY])
                for tool in tools
                if (tool.metadata or {}).get(DEDUPE_KEY)
            },
            window=RetentionWindow(self.config.keep_tool_results, block),
            blobs=self.blobs,
            retry=self.retry,
            base_url=self.base_url,
            context_tokens=self.context_tokens,
            max_tokens=self.max_tokens,
            after_assistant=self.tools_in_prompt,
            slips=slips,
        )
        runner = ToolRunner(
            tools,
            timeout_s=self.config.tool_timeout_s,
            max_chars=self.config.max_result_chars,
            slips=slips,
        )
        derived = {
            "role": role,
            "model_step": step,
            "_all_tools": tools,
            "_servers": servers,
            "_agents_by_tool": {sub.tool.name: sub.name for sub in self.sub_agents},
            "_runner": runner,
            "_tool_time": PendingToolTime(),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # the instance is frozen

    def build(self) -> StateGraph:
        graph = StateGraph(AgentState, input_schema=AgentInput, output_schema=AgentOutput)
        graph.add_node("start", _Step(self.start))
        graph.add_node("model", _Step(self.call_model))
        graph.add_node("tools", _Step(self.run_tools))
        graph.add_node("close", _Step(self.close))
        subs = [node_name(sub.name) for sub in self.sub_agents]
        if subs:
            graph.add_node("collect", _Step(self.collect))
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
        if self.is_sub_agent:
            graph.add_edge("close", END)
        else:  # always there: a run resumed with fewer restarts may stand before it
            graph.add_node("restart", _Step(self.restart))
            graph.add_conditional_edges("close", _Untraced(_after_close), ["restart", END])
            after = ["model", "close", END]
            graph.add_conditional_edges("restart", _Untraced(_after_restart), after)
        return graph

    @property
    def restarts(self) -> int:
        """Restarts this agent may make: a main agent's, whose answer is a box."""
        return 0 if self.is_sub_agent or self.role != "main" else self.config.max_restarts

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
        """A working turn, unless a pause or a spent budget comes first."""
        stats = _stats(state)
        control = current_control()
        if control is not None:
            control.check_pause()  # the step before this one is checkpointed
        self._tool_time.take(config, stats)
        if control is not None and (budget := control.over_budget()):
            turn = stats["turns"] - attempts.current(state).turns_before
            self._emit(config, "budget_reached", budget=budget, turn=turn)
            return close_update(stats, budget)
        return await self.model_step.work(state, config, stats)

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
        turn = _stats(state)["turns"] - attempts.current(state).turns_before
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
            self._tool_time.add(config, time.perf_counter() - started)
            return {"results": pending, **self._slip_count(state, rest)}
        results = await self._runner.run(reply, report)
        self._tool_time.add(config, time.perf_counter() - started)
        update = self._slip_count(state, reply)
        if (rolled_back := self._rolled_back(state, config, results, update)) is not None:
            return rolled_back
        results = [await offload(r, self.blobs) for r in results]
        return self._after_results(state, {"messages": results, **update})

    def _slip_count(self, state: AgentState, reply: AIMessage) -> dict[str, Any]:
        """The stats with the slips the runner repaired in ``reply`` counted (none: {})."""
        if not (repaired := self._runner.slips.count(reply)):
            return {}
        stats = _stats(state)
        stats["slip_repairs"] += repaired
        return {"stats": stats}

    def _succeeded_queries(self, state: AgentState, results: Sequence[ToolMessage]) -> list[str]:
        """Queries of this turn's calls whose results are not errors, not seen before:
        only a query that succeeded rolls back a repeat (the reference's rule)."""
        reply = state["messages"][-1]
        assert isinstance(reply, AIMessage)
        reply = self._runner.slips.reply(reply)  # keyed as run, after its slips' repair
        succeeded = {r.tool_call_id for r in results if r.status != "error"}
        seen = set(attempts.seen_queries(state))
        new: list[str] = []
        for call in reply.tool_calls:
            key = query_key(call, self.model_step.dedupe) if call["id"] in succeeded else None
            if key is not None and key not in seen:
                seen.add(key)
                new.append(key)
        return new

    async def collect(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """Append one turn's results, sub-agent reports included, in call order."""
        control = current_control()
        if control is not None:
            control.check_pause()
        pending = sorted((state.get("results") or {}).values(), key=lambda r: r["order"])
        invocations = [record for r in pending for record in r.get("invocations", ())]
        update: dict[str, Any] = {"results": None}
        if invocations:
            update["invocations"] = invocations  # the sub-agents ran, rolled back or not
        results = [self._within_budget(r["message"]) for r in pending]
        if (rolled_back := self._rolled_back(state, config, results, update)) is not None:
            return rolled_back
        update["messages"] = [await offload(r, self.blobs) for r in results]
        return self._after_results(state, update)

    def _within_budget(self, message: ToolMessage) -> ToolMessage:
        """A sub-agent's report held to the same result budget as any tool result."""
        text = message.text
        cut = self._runner.truncate(text)
        return message if cut is text else message.model_copy(update={"content": cut})

    def _rolled_back(
        self,
        state: AgentState,
        config: RunnableConfig,
        results: Sequence[ToolMessage],
        update: dict[str, Any],
    ) -> dict[str, Any] | None:
        """The update that rolls the turn back when its results say so (None: keep them).

        An error result or a search without results (``result_checks``; sub-agent
        reports are not judged) removes the reply and shows none of its results:
        the model is sampled again on the history it had, the turn not counted, at
        most ``max_rollbacks`` in a row (the streak reply rollbacks share); then the
        results are shown. What the tools did stays done, and its calls stay counted
        in ``tool_calls`` (usage, as their ``tool_call`` events report them).
        """
        streak = state.get("rollback_streak", 0)
        if streak >= self.config.max_rollbacks:
            return None
        reason = result_rollback_reason(results, exempt=self._agents_by_tool)
        if reason is None:
            return None
        reply = state["messages"][-1]
        assert isinstance(reply, AIMessage) and reply.id
        stats = update.get("stats") or _stats(state)
        stats["turns"] -= 1
        stats["rollbacks"] += 1
        turn = stats["turns"] + 1 - attempts.current(state).turns_before
        self._emit(config, "turn_rolled_back", turn=turn, reason=reason)
        return {
            **update,
            "messages": [RemoveMessage(id=reply.id)],
            "stats": stats,
            "rollback_streak": streak + 1,
        }

    def _after_results(self, state: AgentState, update: dict[str, Any]) -> dict[str, Any]:
        if state.get("rollback_streak", 0):  # the turn is kept: the rollbacks in a row end
            update["rollback_streak"] = 0  # (written only when it changes: a channel write costs)
        if queries := self._succeeded_queries(state, update["messages"]):
            update["queries"] = queries
        now = attempts.current(state)
        if _stats(state)["turns"] - now.turns_before >= self.config.max_turns:
            update["phase"] = "close"
            update["stop_reason"] = "max_turns"
        return update

    async def close(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """The closing request: summary and final answer (or report), no tools.

        The model is shown the request after an assistant message, with what the
        reference agent drops before it (``model_step.closing_history``); the
        stored history keeps every message and gains the request and the reply.
        An agent that may still restart takes only a box of this reply as its
        answer; its last attempt falls back on the last box seen in the run.
        """
        stats = _stats(state)
        self._tool_time.take(config, stats)
        request = HumanMessage(
            prompts.closing_request(attempts.question(state), role=self.role), id=new_id()
        )
        context_full = state.get("stop_reason") in CONTEXT_FULL
        stop_reason = state.get("stop_reason") or "answered"
        restart = self._may_restart(state, stop_reason)
        if restart and stop_reason == "max_turns":
            # The reference asks no answer of an attempt whose turns ran out while it
            # may restart (it would be a guess): the attempt is summarised at once.
            return {"stats": stats, "phase": "restart", "answer": None, "stop_reason": stop_reason}
        base = attempts.current(state).turns_before
        started = time.perf_counter()
        reply = await self.model_step.closing_reply(
            attempts.history(state), request, config, stats, context_full=context_full, base=base
        )
        fallback = None if restart else state.get("boxed")
        answer: str | None
        if reply is None:
            answer, new = fallback, [request]
        else:
            count_usage(stats, reply)
            reply = redact_reply(reply)
            self.model_step.report_call(
                config, stats, started, reply, "ok", phase="close", base=base
            )
            visible = split_thinking(reply.text)[1]
            if self.role == "main":
                answer = extract_boxed(visible) or fallback
            else:
                answer = visible or fallback
            new = [request, reply]
        answered = bool((answer or "").strip())
        if not answered:
            stop_reason = _why_no_answer(stop_reason, reply)
        return {
            "messages": new,
            "stats": stats,
            "answer": answer,
            "phase": "restart" if restart and not answered else "done",
            "stop_reason": stop_reason,
        }

    def _may_restart(self, state: AgentState, stop_reason: str) -> bool:
        """Whether an attempt that ends with no answer starts again: this agent restarts,
        restarts are left, and no budget of the run is spent (a restart would overrun it)."""
        if not self.restarts or not attempts.may_restart(state, self.restarts, stop_reason):
            return False
        control = current_control()
        return control is None or control.over_budget() is None

    async def restart(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """Start again from the task after an attempt with no answer (``graphs.attempts``).

        With ``restart_summary`` the model is first asked what the attempt tried
        and found (the request and its reply stay in the history); the new attempt
        gets the first attempt's system prompt, unchanged, and the task with every
        summary so far. A restart no longer possible (a run budget spent since the
        closing step, or a run resumed with fewer restarts) ends the agent instead:
        with the closing request the attempt skipped, or with its last box.
        """
        control = current_control()
        if control is not None:
            control.check_pause()
        stats = _stats(state)
        stop_reason = state.get("stop_reason") or "answered"
        if not self._may_restart(state, stop_reason):
            if not _closing_asked(state):
                return {"phase": "close"}
            budget = control.over_budget() if control is not None else None
            answer = state.get("boxed")
            return {"phase": "done", "answer": answer, "stop_reason": budget or stop_reason}
        summary: str | None = None
        added: list[Any] = []
        if self.config.restart_summary:
            summary, added = await self._failure_summary(state, config, stats)
        ended = attempts.record(state, state.get("stop_reason"), summary)
        ended["messages_end"] += len(added)
        records = [*(state.get("attempts") or []), ended]
        task = attempts.question({**state, "attempts": records})
        system = state["messages"][0]
        self._emit(
            config,
            "restarted",
            attempt=ended["attempt"] + 1,
            after=ended["stop_reason"],
            turns=ended["turns"],
            summary_chars=len(summary or ""),
        )
        return {
            "messages": [
                *added,
                SystemMessage(system.content, id=new_id()),
                HumanMessage(prompts.task_message(task, role=self.role), id=new_id()),
            ],
            "attempts": records,
            "stats": stats,
            "phase": "work",
            "rollback_streak": 0,
            "boxed": None,  # the new attempt falls back on its own boxes only
            "answer": None,
            "stop_reason": None,
        }

    async def _failure_summary(
        self, state: AgentState, config: RunnableConfig, stats: AgentStats
    ) -> tuple[str | None, list[Any]]:
        """The finished attempt's summary, and the request and reply to store (the reply
        after the prefix it continued); None and nothing when it could not fit."""
        work, closing = attempts.closing_part(attempts.history(state))
        started = time.perf_counter()
        base = attempts.current(state).turns_before
        reply = await self.model_step.failure_summary(
            work,
            closing,
            config,
            stats,
            context_full=state.get("stop_reason") in CONTEXT_FULL,
            base=base,
        )
        if reply is None:
            return None, []
        count_usage(stats, reply)
        reply = redact_reply(reply)
        self.model_step.report_call(config, stats, started, reply, "ok", phase="summary", base=base)
        summary = attempts.summary_of(reply)
        if self.tools_in_prompt:  # stored as the model wrote it: after the given prefix
            reply = reply.model_copy(
                update={"content": prompts.FAILURE_SUMMARY_PREFIX + reply.text}
            )
        request = HumanMessage(prompts.FAILURE_SUMMARY_REQUEST, id=new_id())
        return summary, [request, reply]

    # -- events ---------------------------------------------------------------

    def _emit(self, config: RunnableConfig, event: str, **fields: Any) -> None:
        emit_event(self.name, config, event, **fields)

    def _tool_reporter(self, config: RunnableConfig, turn: int) -> ToolReport:
        def report(
            call: ToolCall | InvalidToolCall,
            result: ToolMessage,
            seconds: float,
            slips: tuple[str, ...],
        ) -> None:
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
                **({"slips": list(slips)} if slips else {}),  # repaired before it ran
            )

        return report


class _Step:
    """One of the loop's own steps as a node, hidden from LangGraph's subgraph search.

    For a node given as a function, LangGraph disassembles it and every module
    global it names to find subgraphs it might call (``find_subgraph_pregel``),
    and evaluates its type hints to infer its input: ~20 ms of CPU per compiled
    agent, every run. These steps call no subgraph (each sub-agent is a node of
    its own, found as before) and take the graph's state, so a callable object,
    which LangGraph does not search, stands in; it has the step's signature, so
    LangGraph passes the same arguments (``config`` where the step takes it).
    """

    def __init__(self, step: Callable[..., Awaitable[dict[str, Any]]]) -> None:
        self._step = step
        self.__name__ = step.__name__
        self.__signature__ = inspect.signature(step)

    async def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await self._step(*args, **kwargs)


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


def _after_close(state: AgentState) -> str:
    """``restart`` when the closing step says the agent starts again, else the end."""
    return "restart" if state.get("phase") == "restart" else END


def _after_restart(state: AgentState) -> str:
    """The new attempt's first turn; or, when the restart could not happen, the
    closing request the attempt skipped, or the end."""
    phase = state.get("phase")
    return "model" if phase == "work" else "close" if phase == "close" else END


def _closing_asked(state: AgentState) -> bool:
    """Whether the attempt made its closing request (its reply may not have come)."""
    history = attempts.history(state)
    closing = [m for m in history[-2:] if isinstance(m, HumanMessage)]
    return any(prompts.is_closing_request(m.text) for m in closing)


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


def _stats(state: AgentState) -> AgentStats:
    """The agent's counters, with any added since the checkpoint was written."""
    return AgentStats(**{**empty_stats(), **(state.get("stats") or {})})
