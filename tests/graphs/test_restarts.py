"""Restarts (``max_restarts``), over HTTP against sim-model: the exact messages sent.

An attempt that ends with no boxed answer starts again from the task:
- with ``restart_summary`` (v1.0, v1.5) the model is first asked what the attempt
  tried and found: after the attempt as its closing request saw it, no tools, a
  reply that continues an assistant message opening the thinking
  (``continue_final_message``); the new task carries each summary;
- without it (1.7) the new attempt gets the task exactly as the first one did.
Each attempt has the whole turn budget and its own duplicate-query memory; the
model sees only its own attempt; a kill in attempt 3 resumes in attempt 3.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from support.loop_kit import call, make_loop, run_loop, servers

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import (
    FAILURE_SUMMARY_PREFIX,
    FAILURE_SUMMARY_REQUEST,
    closing_request,
    restart_question,
    task_message,
)
from mirograph.agents.sim.scripting import Fault
from mirograph.agents.tools.base import DEDUPE_KEY, on_server
from mirograph.errors import ModelServerError
from mirograph.graphs.attempts import summary_of
from mirograph.graphs.run_control import Budgets, RunControl, controlling

QUESTION = "What is it?"  # run_loop's question
NO_BOX = "Nothing found.</think>\n\nI could not find it."
BOXED = "Found.</think>\n\n\\boxed{42}"


@tool
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


TOOLS = [on_server(echo, "lab")]
server = pytest.fixture(servers)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def summary_text(attempt: int) -> str:
    return f"Failure type: incomplete\nWhat happened: attempt {attempt} ran out of turns."


class Attempts:
    """A model that fails ``failing`` attempts (calls until the turns run out, then
    no box), summarises each when asked, and answers in the next attempt. It counts
    the attempts by the closing requests it has answered (requests come one by one)."""

    def __init__(self, failing: int, *, mid_run_box: bool = False) -> None:
        self.failing = failing
        self.mid_run_box = mid_run_box
        self.closed = 0

    def attempt(self, body: dict[str, Any]) -> int:
        """The attempt a request belongs to (a summary request: the one it summarises)."""
        return self.closed + (0 if body.get("continue_final_message") else 1)

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        number = self.attempt(body)
        if body.get("continue_final_message"):
            return f"Looking back.</think>\n\n{summary_text(number)}"
        if messages[-1]["content"].startswith(closing_request("")[:40]):
            self.closed += 1
            return BOXED if number > self.failing else NO_BOX
        if number > self.failing:
            return BOXED
        turn = sum(m["role"] == "assistant" for m in messages) + 1
        box = "\\boxed{7} for now. " if self.mid_run_box else ""
        return call("echo", text=f"a{number}t{turn}").replace("Calling", f"{box}Calling")


def bodies(srv: Any) -> list[dict[str, Any]]:
    return list(srv.requests)


async def test_a_restart_with_summary_sends_exactly_these_messages(server, tmp_path) -> None:
    srv = server(Attempts(failing=1))
    loop = make_loop(srv, TOOLS, max_turns=2, max_restarts=2, restart_summary=True)
    values = await run_loop(loop, tmp_path)
    sent = bodies(srv)
    # Attempt 1: two turns, the closing request (…A2, CLOSE: R2 not shown), no box.
    system, task = sent[0]["messages"]
    assert task == user(task_message(QUESTION))
    a1, a2 = call("echo", text="a1t1"), call("echo", text="a1t2")
    close1 = closing_request(QUESTION)
    attempt1 = [system, task, assistant(a1), user("echo: a1t1"), assistant(a2)]
    assert sent[2]["messages"] == [*attempt1, user(close1)]
    # The summary request: the attempt as its closing request saw it, the closing
    # reply, the request, then an assistant message that opens the thinking,
    # continued (vLLM's continue_final_message), not answered in a new turn.
    summary = sent[3]
    assert summary["messages"] == [
        *sent[2]["messages"],
        assistant(NO_BOX),
        user(FAILURE_SUMMARY_REQUEST),
        assistant(FAILURE_SUMMARY_PREFIX),
    ]
    assert summary["continue_final_message"] is True
    assert summary["add_generation_prompt"] is False
    assert all("continue_final_message" not in b for b in sent[:3] + sent[4:])
    # Attempt 2 starts from the task with the summary, the same system prompt, and
    # nothing of attempt 1; its closing request repeats that task.
    task2 = restart_question(QUESTION, [summary_text(1)])
    assert "[Attempt 1]\n" + summary_text(1) in task2
    assert sent[4]["messages"] == [system, user(task_message(task2))]
    assert sent[5]["messages"] == [
        system,
        user(task_message(task2)),
        assistant(BOXED),
        user(closing_request(task2)),
    ]
    assert len(sent) == 6
    assert values["answer"] == "42" and values["stop_reason"] == "answered"
    [record] = values["attempts"]
    assert record["attempt"] == 1 and record["stop_reason"] == "max_turns"
    assert record["turns"] == 2 and record["summary"] == summary_text(1)
    assert values["stats"]["turns"] == 3  # all attempts: the counters add up
    assert values["stats"]["model_calls"] == 6
    # The stored history keeps both attempts, the summary exchange between them.
    stored = [m.text for m in values["messages"]]
    assert stored[record["messages_end"]] == system["content"]
    assert stored[record["messages_end"] - 2] == FAILURE_SUMMARY_REQUEST
    assert stored[record["messages_end"] - 1].startswith(FAILURE_SUMMARY_PREFIX + "Looking back.")


async def test_a_restart_without_summary_starts_on_the_same_task(server, tmp_path) -> None:
    srv = server(Attempts(failing=1))
    loop = make_loop(srv, TOOLS, max_turns=2, max_restarts=5, restart_summary=False)
    values = await run_loop(loop, tmp_path)
    sent = bodies(srv)
    assert len(sent) == 5  # attempt 1: 2 turns + close; attempt 2: 1 turn + close
    assert all("continue_final_message" not in b for b in sent)
    system, task = sent[0]["messages"]
    assert sent[3]["messages"][:2] == [system, task]  # the same task, as attempt 1 had it
    assert values["answer"] == "42"
    [record] = values["attempts"]
    assert record["summary"] is None and record["stop_reason"] == "max_turns"


async def test_a_box_seen_mid_run_does_not_stop_a_restart_but_is_the_last_fallback(
    server, tmp_path
) -> None:
    srv = server(Attempts(failing=9, mid_run_box=True))
    loop = make_loop(srv, TOOLS, max_turns=1, max_restarts=2, restart_summary=True)
    values = await run_loop(loop, tmp_path)
    # Three attempts (two restarts), each: one turn, the closing request, a summary
    # (the last attempt is not summarised: nothing follows it).
    assert len(srv.requests) == 3 * 2 + 2
    assert [a["attempt"] for a in values["attempts"]] == [1, 2]
    assert values["answer"] == "7"  # the last attempt falls back on the box seen
    assert values["stop_reason"] == "max_turns"


async def test_turns_and_repeated_queries_count_per_attempt(server, tmp_path) -> None:
    keyed = TOOLS[0].model_copy(update={"metadata": {**TOOLS[0].metadata, DEDUPE_KEY: ["text"]}})
    same, other = call("echo", text="same"), call("echo", text="other")
    summary = "Stuck.</think>\n\nsummary"
    replies = iter([same, same, other, NO_BOX, summary, same, BOXED, BOXED])
    srv = server(lambda body: next(replies))
    loop = make_loop(srv, [keyed], max_turns=2, max_restarts=1)
    values = await run_loop(loop, tmp_path)
    # In attempt 1 the repeat is rolled back; attempt 2 repeats attempt 1's query
    # as its first, and it runs: each attempt has its own memory and turn budget.
    assert values["stats"]["rollbacks"] == 1
    assert [a["turns"] for a in values["attempts"]] == [2]
    assert values["stats"]["turns"] == 4
    attempt2 = values["messages"][values["attempts"][0]["messages_end"] :]
    assert [m.text for m in attempt2 if m.type == "tool"] == ["echo: same"]
    assert values["answer"] == "42"


async def test_a_run_budget_does_not_restart(server, tmp_path) -> None:
    srv = server(Attempts(failing=9))
    control = RunControl(budgets=Budgets(max_tokens_total=1))
    loop = make_loop(srv, TOOLS, max_turns=5, max_restarts=3)
    with controlling(control):
        values = await run_loop(loop, tmp_path)
    assert values["stop_reason"] == "max_tokens_total"
    assert not values.get("attempts")
    assert len(srv.requests) == 2  # one turn, then the closing request: no restart


async def test_a_run_stopped_in_attempt_three_resumes_in_attempt_three(server, tmp_path) -> None:
    policy = Attempts(failing=2)
    failed: list[int] = []

    def breaks_once_in_attempt_three(body: dict[str, Any]) -> Any:
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        if policy.attempt(body) == 3 and turn == 0 and not failed:
            failed.append(1)
            return Fault(status=503, message="down")  # retries none: the run stops
        return policy(body)

    srv = server(breaks_once_in_attempt_three)
    loop = make_loop(srv, TOOLS, max_turns=2, max_restarts=3)
    with pytest.raises(ModelServerError):
        await run_loop(loop, tmp_path)
    before = len(srv.requests)
    values = await run_loop(
        make_loop(srv, TOOLS, max_turns=2, max_restarts=3), tmp_path, resume=True
    )
    after = srv.requests[before:]
    # The resumed run asks attempt 3's first turn again, with attempt 3's history only.
    task3 = restart_question(QUESTION, [summary_text(1), summary_text(2)])
    assert after[0]["messages"][1] == user(task_message(task3))
    assert after[0]["messages"] == srv.requests[before - 1]["messages"]
    assert [a["attempt"] for a in values["attempts"]] == [1, 2]
    assert values["answer"] == "42"


@pytest.mark.parametrize(
    ("text", "reasoning", "summary"),
    [
        ("<think>\nHm.</think>\n\nFailure type: blocked", None, "Failure type: blocked"),
        ("\n\nFailure type: blocked", "Hm.", "Failure type: blocked"),
        # A call or an empty box in the summary is not part of it.
        (
            "<think>\nHm.</think>\n\nStuck. \\boxed{ }\n" + render_call("lab", "echo", {}),
            None,
            "Stuck.",
        ),
        # Nothing visible, or the thinking never closed: the thinking is the summary.
        ("<think>\nTried a and b.</think>\n\n\\boxed{}", None, "Tried a and b."),
        ("<think>\nTried a, then", None, "Tried a, then"),
        ("<think>\n</think>\n\n", None, None),
    ],
)
def test_what_a_summary_reply_says(text: str, reasoning: str | None, summary: str | None) -> None:
    extra = {"reasoning_content": reasoning} if reasoning else {}
    assert summary_of(AIMessage(text, additional_kwargs=extra)) == summary
