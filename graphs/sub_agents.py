"""Sub-agents as tools: what a parent agent sees, and the node that runs one call.

A parent sees each sub-agent as one tool with one ``subtask`` argument on the
server ``agent-<name>`` (browsing: ``agent-browsing`` / ``search_and_browse``,
as the MiroThinker weights know it). The tool runner never runs such a call:
the parent's model step sends it (LangGraph ``Send``) to the sub-agent's node,
so the calls of one reply run in parallel, each as a subgraph with its own
checkpoint namespace, and a killed run resumes each where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.messages.tool import ToolCall
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.errors import GraphRecursionError
from langgraph.pregel import Pregel
from pydantic import BaseModel, Field

from mirograph.agents.tools.base import DEDUPE_KEY, SERVER_KEY, documented, with_description
from mirograph.errors import TaskFailedError
from mirograph.graphs.run_control import announce_call
from mirograph.state.messages import new_id
from mirograph.state.redact import redact
from mirograph.state.schema import AgentStats, Invocation, empty_stats
from mirograph.text import describe

#: Tool metadata naming the sub-agent a tool stands for.
SUB_AGENT_KEY = "mirograph_sub_agent"

#: The one argument of a sub-agent's tool.
SUBTASK = "The sub-task, stated fully: the agent sees nothing else."
#: What every sub-agent's tool returns when the agent ends without a report.
NO_REPORT = (
    " If the agent stops without one, a line saying so and why (an error message if"
    " its task failed)."
)


def _described(summary: str, returns: str) -> str:
    """A sub-agent tool's description, with Args and Returns as a tool's docstring has."""
    return documented(summary, {"subtask": SUBTASK}, returns + NO_REPORT)


#: How a parent sees a sub-agent by role: tool name and description.
ROLE_TOOLS: dict[str, tuple[str, str]] = {
    "browsing": (
        "search_and_browse",
        _described(
            "Hands a sub-task to a browsing agent, which searches the web and reads pages to"
            " find the specific, verifiable information the sub-task asks for. State the"
            " sub-task clearly, with the background it needs; it does not take vague or"
            " speculative requests.",
            "The agent's report, as text: what it found and where it found it.",
        ),
    ),
    "coding": (
        "write_and_run_code",
        _described(
            "Hands a sub-task to a coding agent, which writes and runs code to compute,"
            " transform or check data. State the inputs and the result wanted.",
            "The agent's report, as text: the results its code produced.",
        ),
    ),
    "reasoning": (
        "reason_step_by_step",
        _described(
            "Hands a sub-task to a reasoning agent, which thinks it through without tools."
            " Give it every fact it needs: it cannot look anything up.",
            "The agent's report, as text: its conclusion and the reasoning behind it.",
        ),
    ),
}
GENERIC_TOOL = (
    "run_subtask",
    _described(
        "Hands a sub-task to the {name} agent, which works on it with its own tools.",
        "The agent's report, as text: what it found.",
    ),
)


class SubtaskArgs(BaseModel):
    subtask: str = Field(description=SUBTASK)


def node_name(agent: str) -> str:
    """The parent's graph node that runs calls to sub-agent ``agent``."""
    return f"agent_{agent}"


def tool_name_of(agent: str, role: str | None, name: str | None = None) -> str:
    """The tool name a parent calls ``agent`` by: explicit, else its role's default."""
    return name or ROLE_TOOLS.get(role or agent, GENERIC_TOOL)[0]


def sub_agent_tool(
    agent: str, role: str | None, *, name: str | None = None, description: str | None = None
) -> BaseTool:
    """The tool a parent sees for ``agent``, on server ``agent-<agent>``."""
    default_description = ROLE_TOOLS.get(role or agent, GENERIC_TOOL)[1]

    async def not_delegated(subtask: str) -> str:
        # Only calls whose arguments do not validate reach the tool runner.
        raise ValueError("the subtask is empty; state the sub-task to hand over")

    tool = StructuredTool.from_function(
        coroutine=not_delegated,
        name=tool_name_of(agent, role, name),
        description=description or default_description.format(name=agent),
        args_schema=SubtaskArgs,
        metadata={SERVER_KEY: f"agent-{agent}", SUB_AGENT_KEY: agent, DEDUPE_KEY: ["subtask"]},
    )
    # A flow's own description is used as LangChain gives it (stripped), as before.
    return tool if description else with_description(tool, default_description.format(name=agent))


def delegated(reply: AIMessage, agents_by_tool: Mapping[str, str]) -> list[tuple[ToolCall, str]]:
    """The reply's calls that go to a sub-agent: a known tool and a non-empty sub-task."""
    calls = []
    for call in reply.tool_calls:
        agent = agents_by_tool.get(call["name"])
        subtask = call["args"].get("subtask")
        if agent is not None and isinstance(subtask, str) and subtask.strip():
            calls.append((call, agent))
    return calls


@dataclass
class SubAgent:
    """A compiled sub-agent graph and the tool its parent calls it by."""

    name: str
    graph: Pregel
    tool: BaseTool


Delegate = Callable[[dict[str, Any], RunnableConfig], Coroutine[Any, Any, dict[str, Any]]]


def delegate_node(sub: SubAgent, parent: str) -> Delegate:
    """The node that runs one call of ``sub`` and returns its report as the call's result.

    The sub-agent runs as a subgraph of this node's task, so it checkpoints in
    its own namespace. Only a failure of its task itself (``task_failure``)
    becomes a tool error the parent sees. Anything else (a pause, the model
    server, the store, a bug of ours) propagates: the run pauses or fails,
    resumable at the sub-agent's last checkpoint, instead of going on with a
    hole where the report should be.
    """
    graph = sub.graph
    tool_name = sub.tool.name
    server = f"agent-{sub.name}"

    async def delegate(task: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        call_id, subtask = task["call_id"], task["subtask"]
        record = Invocation(
            agent=sub.name,
            parent=parent,
            depth=1,
            call_id=call_id,
            subtask=subtask,
            status="completed",
            stop_reason=None,
            stats=empty_stats(),
            checkpoint_ns=_namespace(config),
        )
        nested: list[dict[str, Any]] = []
        finished = announce_call(sub.name, parent, record["checkpoint_ns"], call_id, subtask)
        try:
            out = await graph.ainvoke({"question": subtask}, config)
        except Exception as exc:
            if (reason := task_failure(exc)) is None:
                raise  # the run pauses or fails, resumable at the sub-agent's checkpoint
            text = (
                f"Tool call to {tool_name} on {server} failed:"
                f" the sub-agent stopped ({describe(exc)})"
            )
            message = ToolMessage(
                redact(text), tool_call_id=call_id, name=tool_name, status="error", id=new_id()
            )
            record.update(status="failed", stop_reason=reason, stats=await _last_stats(config))
        else:
            report = (out.get("answer") or "").strip()
            if not report:
                report = (
                    f"The {sub.name} agent ended without a report"
                    f" (stop reason: {out.get('stop_reason') or 'unknown'})."
                )
            message = ToolMessage(report, tool_call_id=call_id, name=tool_name, id=new_id())
            record["stop_reason"] = out.get("stop_reason")
            record["stats"] = out.get("stats") or empty_stats()
            nested = [{**r, "depth": r["depth"] + 1} for r in out.get("invocations") or ()]
        finished(record["status"], record["stop_reason"], record["stats"]["turns"])
        result = {"message": message, "order": task["order"], "invocations": [record, *nested]}
        return {"results": {call_id: result}}

    return delegate


def task_failure(exc: BaseException) -> str | None:
    """The stop reason when ``exc`` is a sub-agent's task failing, else None.

    The task fails when the sub-agent runs out of steps (its recursion limit)
    or something in it raises ``TaskFailedError``. Its turn budget, context
    and rollbacks are not exceptions: the sub-agent closes with a report.
    Everything else is the engine's, the store's or a server's failure.
    """
    if isinstance(exc, GraphRecursionError):
        return "recursion_limit"
    if isinstance(exc, TaskFailedError):
        return "task_failed"
    return None


def _namespace(config: RunnableConfig) -> str:
    """This node's checkpoint namespace: the one the sub-agent's graph runs in."""
    return (config.get("configurable") or {}).get("checkpoint_ns") or ""


async def _last_stats(config: RunnableConfig) -> AgentStats:
    """The counters a failed sub-agent last checkpointed (in this task's namespace)."""
    configurable = config.get("configurable") or {}
    saver = configurable.get(CONFIG_KEY_CHECKPOINTER)
    if saver is None:
        return empty_stats()
    where = {
        "configurable": {
            "thread_id": configurable.get("thread_id"),
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        }
    }
    saved = await saver.aget_tuple(where)
    stats = (saved.checkpoint["channel_values"].get("stats") if saved else None) or {}
    return AgentStats(**{**empty_stats(), **stats})
