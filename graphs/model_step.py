"""What an agent's model step does: one accepted reply, or why the agent closes.

A working step shows the model the agent's view of its history and takes its
reply, unless:
- the server fails: the call is retried with backoff (``RetryPolicy``), then
  the run pauses;
- the reply was cut by ``max_tokens``: it is asked again with a budget 10 %
  larger each time, and the cut reply is kept if the larger budget does not fit;
- the reply must be resampled (``reply_checks.rollback_reason``): it is asked
  again without counting a turn, up to the agent's rollback limit.
The closing step asks for the answer after an assistant message
(``closing_history``: what is dropped, and why), once, or again with one
more turn dropped when that cannot fit.

``ModelStep`` is built once per agent and shared by every run of its graph:
what one step has tried lives in a ``_Turn`` made for that step, never here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from mirograph.agents import prompts
from mirograph.agents.adapter import CountsTokens, RepliesDirectly, observed
from mirograph.agents.mirothinker.boxed import extract_boxed
from mirograph.agents.mirothinker.thinking import split_thinking
from mirograph.agents.model_failures import classify_model_error
from mirograph.agents.retry import RetryPolicy
from mirograph.errors import ContextOverflowError
from mirograph.graphs import attempts
from mirograph.graphs.config import AgentConfig
from mirograph.graphs.reply_checks import query_keys, rollback_reason
from mirograph.graphs.run_control import agent_namespace, current_control
from mirograph.graphs.slips import SlipRepairs
from mirograph.state.blobs import BlobStore, hydrate
from mirograph.state.messages import new_id
from mirograph.state.redact import redact_reply
from mirograph.state.retention import RetentionWindow
from mirograph.state.schema import AgentState, AgentStats
from mirograph.text import describe

#: Conservative characters per token, for the context estimate before /tokenize.
CHARS_PER_TOKEN = 3.0
#: Why an agent closes when its context is full: its closing view drops more.
CONTEXT_FULL = frozenset({"context_limit", "context_overflow"})


@dataclass
class _Turn:
    """What one working step has tried so far; made per step, never kept."""

    view: list[BaseMessage]
    #: Tokens kept free for the closing request, which must still fit after this turn.
    reserve: int
    #: Queries that succeeded before this step (a repeat rolls back).
    seen: set[str]
    #: Rollbacks in a row, this step's included.
    streak: int
    #: Turns of the agent's earlier attempts: events number turns within the attempt.
    base: int = 0
    #: The reply budget asked for: None (the model's own) until a reply is cut.
    max_tokens: int | None = None
    length_retries: int = 0
    #: The last reply cut by ``max_tokens``.
    cut: AIMessage | None = None


@dataclass(frozen=True)
class _Sample:
    """One reply of a working step and when its request started."""

    reply: AIMessage
    started: float
    #: A cut reply kept after the larger budget overflowed: reported when it was cut.
    reported: bool = False


@dataclass(frozen=True, eq=False)
class ModelStep:
    """The model calls of one agent: its working turns and its closing request."""

    agent: str
    role: str
    config: AgentConfig
    model: BaseChatModel
    #: The model with the agent's tools bound (the model itself without tools).
    bound: Runnable[Any, Any]
    #: The server of each tool, by tool name.
    servers: dict[str, str]
    #: The argument fields that identify a query, by tool name (repeats roll back).
    dedupe: Mapping[str, Sequence[str]]
    #: Keep-K views; a memo of the last history seen, right for any mix of runs.
    window: RetentionWindow
    blobs: BlobStore | None
    retry: RetryPolicy
    base_url: str
    context_tokens: int | None
    max_tokens: int | None
    #: The MiroThinker protocol: the closing request follows an assistant message,
    #: as trained. A native model's API wants a call's results after the call.
    after_assistant: bool = True
    #: The slips repaired in a call before it runs: queries are keyed after repair.
    slips: SlipRepairs | None = None
    #: What the adapter offers beyond LangChain's interface (see ``agents.adapter``).
    _counter: CountsTokens | None = field(init=False, repr=False)
    _direct: RepliesDirectly | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        counter = self.model if isinstance(self.model, CountsTokens) else None
        direct = self.model if isinstance(self.model, RepliesDirectly) else None
        object.__setattr__(self, "_counter", counter)
        object.__setattr__(self, "_direct", direct)

    # -- the working step -----------------------------------------------------

    async def work(
        self, state: AgentState, config: RunnableConfig, stats: AgentStats
    ) -> dict[str, Any]:
        """The update of one working step: an accepted reply, or the agent's closing."""
        turn = await self._new_turn(state)
        if not await self.fits(turn.view, reserve=turn.reserve):
            return close_update(stats, "context_limit")
        while True:
            sample = await self._sample(turn, config, stats)
            if sample is None:
                return close_update(stats, "context_overflow")
            if self._enlarged_after_cut(turn, sample, config, stats):
                continue
            reason = self._judged(turn, sample.reply)
            if reason is not None and self._rolled_back(turn, stats):
                self._report(config, stats, sample, "rollback", reason, base=turn.base)
                continue
            overruled = reason and f"{reason}, accepted after {turn.streak} rollbacks in a row"
            self._report(config, stats, sample, "ok", overruled, base=turn.base)
            return self._accepted(sample.reply, stats, overruled=reason, streak=turn.streak)

    async def _new_turn(self, state: AgentState) -> _Turn:
        closing = prompts.closing_request(attempts.question(state), role=self.role)
        return _Turn(
            view=await self.view(attempts.history(state)),
            reserve=int(len(closing) / CHARS_PER_TOKEN) + 16,
            seen=set(attempts.seen_queries(state)),
            streak=state.get("rollback_streak", 0),
            base=attempts.current(state).turns_before,
        )

    async def _sample(
        self, turn: _Turn, config: RunnableConfig, stats: AgentStats
    ) -> _Sample | None:
        """One reply at the turn's budget. When the prompt overflows: the reply cut
        before, if only the larger budget did not fit; else None (the agent closes)."""
        started = time.perf_counter()
        try:
            reply = await self.invoke(
                turn.view, config, stats, tools=True, max_tokens=turn.max_tokens, base=turn.base
            )
        except ContextOverflowError:
            if turn.cut is None:
                return None
            turn.length_retries = self.config.max_length_retries  # no larger budget fits
            return _Sample(turn.cut, started, reported=True)
        count_usage(stats, reply)
        return _Sample(reply, started)

    def _enlarged_after_cut(
        self, turn: _Turn, sample: _Sample, config: RunnableConfig, stats: AgentStats
    ) -> bool:
        """Whether the reply was cut by ``max_tokens`` and the turn now asks again with
        a larger budget (while length retries and context room are left)."""
        if (
            sample.reply.response_metadata.get("finish_reason") != "length"
            or turn.length_retries >= self.config.max_length_retries
        ):
            return False
        larger = self._larger_budget(turn.max_tokens, turn.view, turn.reserve)
        if larger is None:
            return False
        turn.length_retries += 1
        stats["length_retries"] += 1
        self._report(config, stats, sample, "cut", "reply cut by max_tokens", base=turn.base)
        turn.cut, turn.max_tokens = sample.reply, larger
        return True

    def _judged(self, turn: _Turn, reply: AIMessage) -> str | None:
        """Why ``reply`` would roll back (None: it is fine).

        A query repeats one that succeeded before; once ``max_duplicate_rollbacks``
        rollbacks have happened in a row, a repeat is let through."""
        repeated: list[str] = []
        if turn.streak < self.config.max_duplicate_rollbacks:
            judged = self.slips.reply(reply) if self.slips is not None else reply
            repeated = [k for k in query_keys(judged, self.dedupe) if k in turn.seen]
        return rollback_reason(reply, repeated)

    def _rolled_back(self, turn: _Turn, stats: AgentStats) -> bool:
        """Count a rollback, unless ``max_rollbacks`` happened in a row already: then
        False, and the reply is accepted as it is (the reference's rule).

        The resample is the request the rolled-back reply answered, budget
        included: what a cut before it enlarged starts again from the model's own.
        """
        if turn.streak >= self.config.max_rollbacks:
            return False
        stats["rollbacks"] += 1
        turn.streak += 1
        turn.max_tokens, turn.length_retries, turn.cut = None, 0, None
        return True

    def _accepted(
        self,
        reply: AIMessage,
        stats: AgentStats,
        *,
        overruled: str | None = None,
        streak: int = 0,
    ) -> dict[str, Any]:
        """The update that stores an accepted reply: a turn, its calls, a ``\\boxed{}``
        answer; with no call, the agent goes on to close. (Queries are recorded once
        their calls have succeeded: ``AgentLoop._after_results``.) A reply with calls
        keeps the ``streak`` of rollbacks in a row: its results may still roll it
        back (``graphs.result_checks``), and the streak ends when they are kept.

        ``overruled``: why the reply would have rolled back, had the limit of
        rollbacks in a row not been reached. Such a reply with no executable call
        closes the agent (``too_many_rollbacks``); its malformed calls never run.
        """
        if overruled and not reply.tool_calls:
            reply = reply.model_copy(update={"invalid_tool_calls": []})
        reply = redact_reply(_with_unique_call_ids(reply))
        stats["turns"] += 1
        stats["tool_calls"] += len(reply.tool_calls) + len(reply.invalid_tool_calls)
        calls = bool(reply.tool_calls or reply.invalid_tool_calls)
        update: dict[str, Any] = {
            "messages": [reply],
            "stats": stats,
            "rollback_streak": streak if calls else 0,
        }
        boxed = extract_boxed(split_thinking(reply.text)[1])
        if boxed is not None:
            update["boxed"] = boxed
        if not reply.tool_calls and not reply.invalid_tool_calls:
            update["phase"] = "close"
            update["stop_reason"] = "too_many_rollbacks" if overruled else "answered"
        return update

    # -- the closing step -----------------------------------------------------

    async def closing_reply(
        self,
        history: Sequence[BaseMessage],
        request: BaseMessage,
        config: RunnableConfig,
        stats: AgentStats,
        *,
        context_full: bool,
        base: int = 0,
    ) -> AIMessage | None:
        """Ask for the answer after ``closing_history``; when that cannot fit (predicted,
        or the server says so), once more with one more turn dropped.

        At most two requests: never an endless resend of an overflowing prompt.
        """
        return await self._after_closing_history(
            history, [request], config, stats, context_full=context_full, base=base
        )

    async def failure_summary(
        self,
        history: Sequence[BaseMessage],
        closing: Sequence[BaseMessage],
        config: RunnableConfig,
        stats: AgentStats,
        *,
        context_full: bool,
        base: int = 0,
    ) -> AIMessage | None:
        """What an attempt that ended with no answer tried and found, asked as the
        reference agent asks it: after the attempt's work as its closing request saw
        it, then ``closing`` (that request and its reply, if one was made), no tools,
        and, in the MiroThinker protocol, a reply that continues an assistant message
        (``FAILURE_SUMMARY_PREFIX``). None when it cannot fit. The reply is the
        continuation, as the server sent it."""
        request = HumanMessage(prompts.FAILURE_SUMMARY_REQUEST, id=new_id())
        tail: list[BaseMessage] = [*closing, request]
        if self.after_assistant:
            tail.append(AIMessage(prompts.FAILURE_SUMMARY_PREFIX, id=new_id()))
        return await self._after_closing_history(
            history, tail, config, stats, context_full=context_full, base=base
        )

    async def _after_closing_history(
        self,
        history: Sequence[BaseMessage],
        tail: Sequence[BaseMessage],
        config: RunnableConfig,
        stats: AgentStats,
        *,
        context_full: bool,
        base: int,
    ) -> AIMessage | None:
        """A reply to ``tail`` after ``closing_history``; with one more turn dropped when
        that cannot fit; None when neither fits."""
        shape = self.after_assistant
        first = closing_history(history, context_full=context_full, after_assistant=shape)
        second = closing_history(first, context_full=True, after_assistant=shape)
        candidates = [first] if len(second) == len(first) else [first, second]
        for i, kept in enumerate(candidates):
            view = await self.view([*kept, *tail])
            if i + 1 < len(candidates) and not await self.fits(view):
                continue  # predicted overflow: go straight to the trimmed history
            try:
                return await self.invoke(view, config, stats, base=base)
            except ContextOverflowError:
                continue
        return None

    # -- requests -------------------------------------------------------------

    async def view(self, history: Sequence[BaseMessage]) -> list[BaseMessage]:
        """What the model is shown: keep-K applied, kept results read back from blobs."""
        view = self.window.view(history)
        return await hydrate(view, self.blobs, only=self.window.kept_results())

    async def fits(self, view: Sequence[BaseMessage], reserve: int = 0) -> bool:
        """Whether the next call can fit: an estimate first, the server's count when close."""
        if not self.context_tokens:
            return True
        budget = self.context_tokens - (self.max_tokens or 0) - reserve
        if estimate_tokens(view) <= budget:
            return True
        exact = None if self._counter is None else await self._counter.count_tokens(view)
        return exact is not None and exact <= budget

    def _larger_budget(
        self, current: int | None, view: Sequence[BaseMessage], reserve: int
    ) -> int | None:
        """The reply budget of the try before plus 10 % (the reference agent's growth),
        within what the prompt leaves free; None if it cannot grow."""
        current = current or self.max_tokens or 4096
        larger = max(current * 11 // 10, current + 1)
        if self.context_tokens:
            larger = min(larger, self.context_tokens - estimate_tokens(view) - reserve)
        return larger if larger > current else None

    async def invoke(
        self,
        messages: Sequence[BaseMessage],
        config: RunnableConfig,
        stats: AgentStats,
        *,
        tools: bool = False,
        max_tokens: int | None = None,
        base: int = 0,
    ) -> AIMessage:
        """One model reply, retried with backoff on server errors (then the run pauses).

        ``base``: the turns of earlier attempts (an event numbers the attempt's turns)."""

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
            emit_event(
                self.agent,
                config,
                "model_call",
                turn=stats["turns"] - base + (1 if tools else 0),
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
        if self._direct is not None and not observed(config):
            # Nobody traces or streams this call: skip LangChain's per-message
            # bookkeeping, which grows with the history, and call the model directly.
            servers = self.servers if tools else {}
            return await self._direct.areply(messages, servers, max_tokens=max_tokens)
        model: Any = self.bound if tools else self.model
        if max_tokens:
            model = model.bind(max_tokens=max_tokens)
        reply = await model.ainvoke(list(messages), config)
        assert isinstance(reply, AIMessage)
        return reply

    # -- events ---------------------------------------------------------------

    def _report(
        self,
        config: RunnableConfig,
        stats: AgentStats,
        sample: _Sample,
        outcome: str,
        detail: str | None = None,
        *,
        base: int = 0,
    ) -> None:
        """A working step's call, once: a kept cut reply was reported when it was cut."""
        if not sample.reported:
            self.report_call(
                config, stats, sample.started, sample.reply, outcome, detail, base=base
            )

    def report_call(
        self,
        config: RunnableConfig,
        stats: AgentStats,
        started: float,
        reply: AIMessage,
        outcome: str,
        detail: str | None = None,
        *,
        phase: str = "work",
        base: int = 0,
    ) -> None:
        """One model call: counted into the agent's time, reported as an event
        (``base``: the turns of earlier attempts; the event numbers the attempt's)."""
        latency = time.perf_counter() - started
        stats["wall_seconds"] = round(stats["wall_seconds"] + latency, 3)
        if current_control() is None:
            return
        usage = reply.usage_metadata or {}
        emit_event(
            self.agent,
            config,
            "model_call",
            turn=stats["turns"] - base + (1 if phase == "work" else 0),
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


def emit_event(agent: str, config: RunnableConfig, event: str, **fields: Any) -> None:
    """An event of ``agent``'s, to the run's control (none: nobody listens)."""
    control = current_control()
    if control is not None:
        control.emit(event, agent=agent, ns=agent_namespace(config), **fields)


def close_update(stats: AgentStats, reason: str, **extra: Any) -> dict[str, Any]:
    """The update that sends the agent to its closing request, saying why."""
    return {"stats": stats, "phase": "close", "stop_reason": reason, **extra}


def count_usage(stats: AgentStats, reply: AIMessage) -> None:
    """Count a model call and the tokens its reply reports."""
    stats["model_calls"] += 1
    usage = reply.usage_metadata
    if not usage:
        return
    stats["prompt_tokens"] += usage.get("input_tokens", 0)
    stats["completion_tokens"] += usage.get("output_tokens", 0)
    stats["cached_tokens"] += (usage.get("input_token_details") or {}).get("cache_read", 0) or 0


def estimate_tokens(messages: Sequence[BaseMessage]) -> int:
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


def closing_history(
    history: Sequence[BaseMessage], *, context_full: bool, after_assistant: bool = True
) -> list[BaseMessage]:
    """The part of ``history`` the closing request follows, as the reference agent
    sends it (the stored history is not changed; the request is shown this view).

    The MiroThinker protocol (``after_assistant``): the request always follows an
    assistant message, a shape the weights saw in training (never two user
    messages in a row):
    - the agent answered (a reply with no call): nothing is dropped;
    - a turn or run budget (tokens, wall time) ran out, or rollbacks did: the
      newest turn's results are dropped: ``…A7, CLOSE``, not ``…A7, R7, CLOSE``;
    - the context is full (``context_full``): the newest call, its results and
      the results before it are dropped: ``…A6, CLOSE`` (a reply without calls
      is never dropped).
    A native model's API needs a call's results right after it, so there only
    a full context drops something: the newest call and its results
    (``…A6, R6, CLOSE``). The system prompt and the task are never dropped.
    """
    floor = _after_task(history)
    end = len(history)
    if after_assistant or context_full:
        end = _before_results(history, end, floor)  # the newest results
    if context_full and end > floor and _is_call(history[end - 1]):
        end -= 1  # the newest call
        if after_assistant:
            end = _before_results(history, end, floor)  # the results before it
    return list(history[:end])


def _is_call(message: BaseMessage) -> bool:
    """An assistant message with calls (a reply that answered is never dropped)."""
    return isinstance(message, AIMessage) and bool(message.tool_calls or message.invalid_tool_calls)


def _after_task(history: Sequence[BaseMessage]) -> int:
    """Where what may be dropped starts: after the first user message (the task)."""
    for i, message in enumerate(history):
        if isinstance(message, HumanMessage):
            return i + 1
    return len(history)


def _before_results(history: Sequence[BaseMessage], end: int, floor: int) -> int:
    """``end`` moved back past the user-side messages (results) that precede it."""
    while end > floor and not isinstance(history[end - 1], AIMessage | SystemMessage):
        end -= 1
    return end


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
