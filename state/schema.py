"""The state one agent keeps in the checkpoint.

Everything a resumed run needs lives here: the history, the counters, the last
intermediate boxed answer and why the agent stopped. Counters are small
``LastValue`` channels, rewritten each step; the history is a delta channel.
"""

from __future__ import annotations

from typing import Literal, NotRequired

# Not ``typing``'s: below Python 3.12 pydantic cannot build a JSON schema from it, and
# LangGraph then reports null input/output schemas (``get_schemas``, Studio).
from typing_extensions import TypedDict

from mirograph.state.messages import Invocations, Messages, PendingResults, Queries

#: ``restart``: the attempt ended with no answer and the agent starts again.
Phase = Literal["work", "close", "restart", "done"]


class AgentStats(TypedDict):
    """Per-agent accounting, reported by ``show --json``."""

    turns: int
    tool_calls: int
    rollbacks: int
    #: Model calls repeated after a server error, a timeout or a cut stream.
    retries: int
    #: Replies cut by max_tokens and asked again with a larger budget.
    length_retries: int
    #: Slips repaired in calls before they ran (``graphs.slips``): a wrong server
    #: name, tool name or argument name, a missing required ``sandbox_id``.
    slip_repairs: int
    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    #: Seconds spent in this agent's own model calls and tool calls.
    wall_seconds: float


def empty_stats() -> AgentStats:
    return AgentStats(
        turns=0,
        tool_calls=0,
        rollbacks=0,
        retries=0,
        length_retries=0,
        slip_repairs=0,
        model_calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        wall_seconds=0.0,
    )


class Invocation(TypedDict):
    """One finished sub-agent call, as ``show --json`` lists it.

    ``parent`` is the calling agent's name and ``depth`` 1 for a sub-agent of
    the entry agent; the sub-agent's counters are its own, not its children's.
    """

    agent: str
    parent: str
    depth: int
    call_id: str
    subtask: str
    #: ``completed`` when a report came back, ``failed`` when the sub-agent broke.
    status: str
    stop_reason: str | None
    stats: AgentStats
    #: Where the call's own history is checkpointed (``mirograph export`` reads it).
    checkpoint_ns: NotRequired[str]


class Attempt(TypedDict):
    """One finished attempt of an agent that restarts (``max_restarts``), as
    ``show --json`` lists it; the attempt in progress is not among them."""

    attempt: int
    #: Why it ended with no answer (``max_turns``, ``context_limit``, ...).
    stop_reason: str | None
    turns: int
    #: What the agent wrote about it for the next attempt (None: not asked or none given).
    summary: str | None
    #: Where the next attempt starts in ``messages`` and in ``queries``: the history
    #: keeps every attempt, and the model is shown only its own.
    messages_end: int
    queries_end: int


class AgentInput(TypedDict):
    """What starts an agent: the question (or sub-task) it works on."""

    question: str


class AgentState(TypedDict):
    """The checkpointed state of one agent loop."""

    question: str
    #: The agent's name in its flow or graph (reports find running agents by it).
    agent: NotRequired[str]
    messages: Messages
    #: Queries already made (search terms, URLs, sub-tasks): repeats are rolled back.
    queries: NotRequired[Queries]
    stats: NotRequired[AgentStats]
    phase: NotRequired[Phase]
    #: Consecutive rollbacks since the last accepted reply; bounded per agent.
    rollback_streak: NotRequired[int]
    #: Last non-placeholder ``\\boxed{}`` seen in a working turn: the fallback answer.
    boxed: NotRequired[str | None]
    answer: NotRequired[str | None]
    stop_reason: NotRequired[str | None]
    #: Results of the turn in flight, by call id, while its sub-agents run.
    results: NotRequired[PendingResults]
    #: Finished sub-agent calls of this agent and, nested, of theirs.
    invocations: NotRequired[Invocations]
    #: Attempts that ended with no answer and were started again from the task.
    attempts: NotRequired[list[Attempt]]


class AgentOutput(TypedDict):
    answer: str | None
    stop_reason: str | None
    stats: AgentStats
    invocations: list[Invocation]
    attempts: NotRequired[list[Attempt]]


class RunState(TypedDict):
    """The least state of a custom graph: extend it with your own keys.

    ``question`` is what ``mirograph run`` passes in, ``answer`` what it prints;
    ``invocations`` collects the agent calls that ``mirograph show`` reports.
    """

    question: str
    answer: NotRequired[str | None]
    invocations: NotRequired[Invocations]
