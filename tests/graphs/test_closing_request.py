"""The closing request always follows an assistant message, with what the reference
agent drops before it, over HTTP against sim-model (the exact messages it received).

- A turn or run budget ends after a turn with calls: that turn's results are not
  shown (``…A2, CLOSE``, never ``…A2, R2, CLOSE``).
- The context is full (the guard, or a 400): the newest call, its results and the
  results before it are not shown (``…A1, CLOSE``).
The stored history keeps every message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages import ToolMessage as Result
from langchain_core.tools import tool
from support.loop_kit import call, make_loop, run_loop, servers

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.models import build_chat_model
from mirograph.agents.prompts import closing_request, task_message
from mirograph.agents.retry import RetryPolicy
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import on_server
from mirograph.graphs.agent_loop import AgentLoop
from mirograph.graphs.config import AgentConfig
from mirograph.graphs.model_step import closing_history
from mirograph.graphs.run_control import Budgets, RunControl, controlling
from mirograph.graphs.sub_agents import SubAgent, sub_agent_tool

QUESTION = "What is it?"  # run_loop's question
CLOSE = closing_request(QUESTION)
ANSWER = "Done.</think>\n\n\\boxed{42}"
LIMIT = 3_000


@tool
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@tool
def words(count: int) -> str:
    """Return `count` words."""
    return "word " * count


TOOLS = [on_server(echo, "lab"), on_server(words, "lab")]
server = pytest.fixture(servers)


def two_calls(a: str, b: str) -> str:
    return call("echo", text=a) + "\n" + render_call("lab", "echo", {"text": b})


def closing_for(text: str) -> Any:
    """A policy: ``ANSWER`` to the closing request whose text is ``text``, else None."""
    return lambda body: ANSWER if body["messages"][-1]["content"] == text else None


def script(replies: list[str], close: str = CLOSE) -> Any:
    """Walk ``replies`` for working requests; answer the closing request."""
    queue = iter(replies)
    closing = closing_for(close)
    return lambda body: closing(body) or next(queue, ANSWER)


def split(srv: SimServer, close: str = CLOSE) -> tuple[list[Any], list[Any]]:
    """The working requests' messages, and the closing requests' messages."""
    work = [b["messages"] for b in srv.requests if b["messages"][-1]["content"] != close]
    closing = [b["messages"] for b in srv.requests if b["messages"][-1]["content"] == close]
    return work, closing


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


async def test_after_the_turn_budget_the_last_turns_results_are_not_shown(server, tmp_path) -> None:
    last = two_calls("b", "c")
    srv = server(script([call("echo", text="a"), last]))
    values = await run_loop(make_loop(srv, TOOLS, max_turns=2), tmp_path)
    work, [closing] = split(srv)
    assert work[1][-2:] == [assistant(call("echo", text="a")), user("echo: a")]
    # …A2, CLOSE: the results of A2's two calls are left out, nothing else.
    assert closing == [*work[1], assistant(last), user(CLOSE)]
    assert [m["role"] for m in closing] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert values["stop_reason"] == "max_turns" and values["answer"] == "42"
    # The stored history is not rewritten: A2's results stay, then the request and reply.
    stored = [(m.type, m.text) for m in values["messages"][4:]]
    assert stored == [
        ("ai", last),
        ("tool", "echo: b"),
        ("tool", "echo: c"),
        ("human", CLOSE),
        ("ai", ANSWER),
    ]


async def test_after_a_run_budget_the_last_turns_results_are_not_shown(server, tmp_path) -> None:
    srv = server(script([call("echo", text="a"), call("echo", text="b")]))
    control = RunControl(budgets=Budgets(max_tokens_total=1))
    with controlling(control):  # spent by turn 1: turn 2 closes instead
        values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    work, [closing] = split(srv)
    assert len(work) == 1
    assert closing == [*work[0], assistant(call("echo", text="a")), user(CLOSE)]
    assert values["stop_reason"] == "max_tokens_total" and values["answer"] == "42"


async def test_when_the_guard_finds_the_context_full_three_messages_are_not_shown(
    server, tmp_path
) -> None:
    srv = server(script([call("words", count=400)] * 50), max_context_tokens=LIMIT)
    loop = make_loop(srv, TOOLS, context_tokens=LIMIT, keep_tool_results=-1, max_turns=50)
    values = await run_loop(loop, tmp_path)
    assert values["stop_reason"] == "context_limit"
    work, [closing] = split(srv)
    assert len(work) >= 3
    # The last working request ended …A(n-1), R(n-1); it got A(n), whose results came
    # next. Not shown: A(n), its results, and R(n-1): the request follows A(n-1).
    assert [m["role"] for m in work[-1][-2:]] == ["assistant", "user"]
    assert closing == [*work[-1][:-1], user(CLOSE)]
    assert values["answer"] == "42"


async def test_after_a_context_overflow_three_messages_are_not_shown(server, tmp_path) -> None:
    replies = [call("words", count=50), call("words", count=60), call("words", count=5_000)]
    srv = server(script(replies), max_context_tokens=LIMIT)
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)  # no guard: the server says 400
    assert values["stop_reason"] == "context_overflow"
    work, [closing] = split(srv)
    assert len(work) == 4  # turns 1-3, and turn 4's request, which overflowed
    assert closing == [
        *work[0],
        assistant(replies[0]),
        user("word " * 50),
        assistant(replies[1]),
        user(CLOSE),
    ]
    assert values["answer"] == "42"


async def test_a_closing_request_that_cannot_fit_drops_one_more_turn(server, tmp_path) -> None:
    thinking = " ".join(f"w{i}" for i in range(2_500))
    long_turn = f"{thinking}</think>\n\n" + render_call("lab", "echo", {"text": "b"})
    srv = server(script([call("echo", text="a"), long_turn]), max_context_tokens=LIMIT)
    values = await run_loop(make_loop(srv, TOOLS, max_turns=2), tmp_path)
    work, [too_long, closing] = split(srv)
    assert too_long == [*work[1], assistant(long_turn), user(CLOSE)]  # a 400
    assert closing == [*work[0], assistant(call("echo", text="a")), user(CLOSE)]
    assert values["stop_reason"] == "max_turns" and values["answer"] == "42"


def sub_agent_team(srv: SimServer, sub_turns: int) -> AgentLoop:
    model = build_chat_model(ModelConfig(base_url=srv.base_url, max_tokens=64))
    common: dict[str, Any] = {"model": model, "base_url": srv.base_url}
    common["retry"] = RetryPolicy(max_retries=0)
    browsing = AgentLoop(
        name="browsing",
        config=AgentConfig(model="m", max_turns=sub_turns),
        tools=TOOLS,
        is_sub_agent=True,
        **common,
    )
    sub = SubAgent(
        "browsing", browsing.build().compile(name="browsing"), sub_agent_tool("browsing", None)
    )
    return AgentLoop(name="main", config=AgentConfig(model="m"), sub_agents=[sub], **common)


async def test_a_sub_agent_closes_after_its_last_call_too(server, tmp_path) -> None:
    subtask = "Find the thing."
    sub_close = closing_request(subtask, role="browsing")
    sub_task = task_message(subtask, role="browsing")
    delegate = render_call("agent-browsing", "search_and_browse", {"subtask": subtask})
    main_turns = iter([f"Delegating.</think>\n\n{delegate}"])

    def policy(body: dict[str, Any]) -> str:
        messages = body["messages"]
        if messages[1]["content"] == sub_task:
            if messages[-1]["content"] == sub_close:
                return "Found it.</think>\n\nThe thing is 42."
            return call("echo", text="x")
        return closing_for(CLOSE)(body) or next(main_turns, ANSWER)

    srv = server(policy)
    values = await run_loop(sub_agent_team(srv, sub_turns=1), tmp_path)
    sub_work, [sub_closing] = split(srv, close=sub_close)
    sub_work = [m for m in sub_work if m[1]["content"] == sub_task]
    assert len(sub_work) == 1
    assert sub_closing == [*sub_work[0], assistant(call("echo", text="x")), user(sub_close)]
    assert values["answer"] == "42"


async def test_a_native_model_is_closed_after_its_results(server) -> None:
    """A native API needs a call's results right after the call (``closing_history``)."""
    srv = server(script([]))
    native = AgentLoop(
        name="main",
        config=AgentConfig(model="m"),
        model=build_chat_model(ModelConfig(protocol="native", base_url=srv.base_url)),
        tools_in_prompt=False,
    )
    assert native.model_step.after_assistant is False
    assert make_loop(srv, TOOLS).model_step.after_assistant is True


# -- closing_history on its own -------------------------------------------------


def shape(history: Sequence[BaseMessage]) -> list[str]:
    return [str(m.content) for m in history]


def calling(name: str) -> AIMessage:
    return AIMessage(name, tool_calls=[{"name": "echo", "args": {}, "id": name}])


HISTORY = [
    SystemMessage("S"),
    HumanMessage("T"),
    calling("A1"),
    Result("R1", tool_call_id="A1"),
    calling("A2"),
    Result("R2a", tool_call_id="A2"),
    Result("R2b", tool_call_id="A2"),
]


@pytest.mark.parametrize(
    ("context_full", "after_assistant", "expected"),
    [
        (False, True, ["S", "T", "A1", "R1", "A2"]),
        (True, True, ["S", "T", "A1"]),
        (False, False, ["S", "T", "A1", "R1", "A2", "R2a", "R2b"]),
        (True, False, ["S", "T", "A1", "R1"]),
    ],
    ids=["budget", "context-full", "native-budget", "native-context-full"],
)
def test_what_each_closing_drops(context_full: bool, after_assistant: bool, expected: list) -> None:
    kept = closing_history(HISTORY, context_full=context_full, after_assistant=after_assistant)
    assert shape(kept) == expected
    assert shape(HISTORY)[-1] == "R2b"  # the history given is not changed


def test_the_task_and_an_answer_are_never_dropped() -> None:
    one_turn = HISTORY[:4]
    assert shape(closing_history(one_turn, context_full=True)) == ["S", "T"]
    assert shape(closing_history(HISTORY[:2], context_full=True)) == ["S", "T"]
    answered = [*HISTORY[:4], AIMessage("answer")]
    assert closing_history(answered, context_full=True) == answered
    assert closing_history(answered, context_full=False) == answered
