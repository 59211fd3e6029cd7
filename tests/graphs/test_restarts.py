"""Restarts (``max_restarts``), over HTTP against sim-model: the exact messages sent.

An attempt that ends with no boxed answer starts again from the task:
- with ``restart_summary`` (v1.0, v1.5) the model is first asked what the attempt
  tried and found: after the attempt as its closing request saw it, no tools, a
  reply that continues a given, closed thinking (``continue_final_message``); the
  new task carries each summary;
- without it (1.7) the new attempt gets the task exactly as the first one did;
- an attempt whose turns ran out while it may restart is not asked for an answer
  (the reference's rule: it would be a guess); one that answered without a box is.
Each attempt has the whole turn budget, its own duplicate-query memory and its own
fallback box; the model sees only its own attempt; a spent run budget, or a run
resumed with fewer restarts, does not restart; a stop in attempt 3 resumes there.
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
    """A model that fails ``failing`` attempts, summarises each when asked, and answers
    in the next one. An attempt is read from its task: one ``[Attempt k]`` summary per
    earlier attempt. A failing attempt calls ``echo`` until its turns run out; with
    ``unboxed`` it instead answers without a box at once (its closing reply has none)."""

    def __init__(
        self, failing: int, *, unboxed: bool = False, box_in: frozenset[int] = frozenset()
    ) -> None:
        self.failing, self.unboxed, self.box_in = failing, unboxed, box_in

    @staticmethod
    def attempt(body: dict[str, Any]) -> int:
        return body["messages"][1]["content"].count("[Attempt ") + 1

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        number = self.attempt(body)
        if body.get("continue_final_message"):
            return summary_text(number)
        if messages[-1]["content"].startswith(closing_request("")[:40]):
            return BOXED if number > self.failing else NO_BOX
        if number > self.failing:
            return BOXED
        if self.unboxed:
            return NO_BOX
        turn = sum(m["role"] == "assistant" for m in messages) + 1
        box = "\\boxed{7} for now. " if number in self.box_in else ""
        return call("echo", text=f"a{number}t{turn}").replace("Calling", f"{box}Calling")


def bodies(srv: Any) -> list[dict[str, Any]]:
    return list(srv.requests)


async def test_an_attempt_whose_turns_ran_out_is_summarised_at_once(server, tmp_path) -> None:
    srv = server(Attempts(failing=1))
    loop = make_loop(srv, TOOLS, max_turns=2, max_restarts=2, restart_summary=True)
    values = await run_loop(loop, tmp_path)
    sent = bodies(srv)
    system, task = sent[0]["messages"]
    assert task == user(task_message(QUESTION))
    a1, a2 = call("echo", text="a1t1"), call("echo", text="a1t2")
    # No closing request (an answer now would be a guess): the summary request follows
    # the attempt as a closing request would (…A2: A2's results not shown), then an
    # assistant message with the given thinking, continued (vLLM's continue_final_message).
    summary = sent[2]
    assert summary["messages"] == [
        system,
        task,
        assistant(a1),
        user("echo: a1t1"),
        assistant(a2),
        user(FAILURE_SUMMARY_REQUEST),
        assistant(FAILURE_SUMMARY_PREFIX),
    ]
    assert FAILURE_SUMMARY_PREFIX.startswith("<think>\n")
    assert FAILURE_SUMMARY_PREFIX.endswith("</think>\n\n")
    assert summary["continue_final_message"] is True
    assert summary["add_generation_prompt"] is False
    assert all("continue_final_message" not in b for b in sent[:2] + sent[3:])
    # Attempt 2 starts from the task with the summary, the same system prompt, and
    # nothing of attempt 1; its closing request repeats that task.
    task2 = restart_question(QUESTION, [summary_text(1)])
    assert "[Attempt 1]\n" + summary_text(1) in task2
    assert sent[3]["messages"] == [system, user(task_message(task2))]
    assert sent[4]["messages"] == [
        system,
        user(task_message(task2)),
        assistant(BOXED),
        user(closing_request(task2)),
    ]
    assert len(sent) == 5
    assert values["answer"] == "42" and values["stop_reason"] == "answered"
    [record] = values["attempts"]
    assert record["attempt"] == 1 and record["stop_reason"] == "max_turns"
    assert record["turns"] == 2 and record["summary"] == summary_text(1)
    assert values["stats"]["turns"] == 3  # all attempts: the counters add up
    assert values["stats"]["model_calls"] == 5
    # The stored history keeps both attempts, the summary exchange between them (the
    # reply after the prefix it continued).
    stored = [m.text for m in values["messages"]]
    assert stored[record["messages_end"]] == system["content"]
    assert stored[record["messages_end"] - 2] == FAILURE_SUMMARY_REQUEST
    assert stored[record["messages_end"] - 1] == FAILURE_SUMMARY_PREFIX + summary_text(1)


async def test_an_attempt_that_answered_without_a_box_is_summarised_after_its_closing(
    server, tmp_path
) -> None:
    srv = server(Attempts(failing=1, unboxed=True))
    loop = make_loop(srv, TOOLS, max_turns=5, max_restarts=1)
    values = await run_loop(loop, tmp_path)
    sent = bodies(srv)
    system, task = sent[0]["messages"]
    close1 = closing_request(QUESTION)
    assert sent[1]["messages"] == [system, task, assistant(NO_BOX), user(close1)]
    assert sent[2]["messages"] == [
        *sent[1]["messages"],
        assistant(NO_BOX),
        user(FAILURE_SUMMARY_REQUEST),
        assistant(FAILURE_SUMMARY_PREFIX),
    ]
    assert values["attempts"][0]["stop_reason"] == "no_boxed_answer"
    assert values["answer"] == "42"


async def test_a_restart_without_summary_starts_on_the_same_task(server, tmp_path) -> None:
    replies = iter([call("echo", text="x"), call("echo", text="y"), BOXED, BOXED])
    srv = server(lambda body: next(replies))
    loop = make_loop(srv, TOOLS, max_turns=2, max_restarts=5, restart_summary=False)
    values = await run_loop(loop, tmp_path)
    sent = bodies(srv)
    # Attempt 1: 2 turns, then neither a closing request nor a summary; attempt 2:
    # a turn and its closing request.
    assert len(sent) == 4
    assert all("continue_final_message" not in b for b in sent)
    system, task = sent[0]["messages"]
    assert sent[2]["messages"] == [system, task]  # the same task, as attempt 1 had it
    assert values["answer"] == "42"
    [record] = values["attempts"]
    assert record["summary"] is None and record["stop_reason"] == "max_turns"


async def test_the_last_attempt_falls_back_on_its_own_boxes_only(server, tmp_path) -> None:
    srv = server(Attempts(failing=9, box_in=frozenset({1})))
    loop = make_loop(srv, TOOLS, max_turns=1, max_restarts=2)
    values = await run_loop(loop, tmp_path)
    # Attempts 1 and 2: a turn and a summary each, no closing request (their box
    # "7" does not stop a restart); attempt 3, the last: a turn and its closing request.
    closings = [b for b in srv.requests if b["messages"][-1]["content"].startswith("Your work")]
    assert len(srv.requests) == 2 * 2 + 2 and len(closings) == 1
    assert [a["attempt"] for a in values["attempts"]] == [1, 2]
    assert values["answer"] is None  # attempt 1's box is not attempt 3's answer
    assert values["stop_reason"] == "max_turns"


async def test_the_last_attempt_falls_back_on_a_box_it_saw(server, tmp_path) -> None:
    srv = server(Attempts(failing=9, box_in=frozenset({2})))
    values = await run_loop(make_loop(srv, TOOLS, max_turns=1, max_restarts=1), tmp_path)
    assert values["answer"] == "7" and values["stop_reason"] == "max_turns"


async def test_turns_and_repeated_queries_count_per_attempt(server, tmp_path) -> None:
    keyed = TOOLS[0].model_copy(update={"metadata": {**TOOLS[0].metadata, DEDUPE_KEY: ["text"]}})
    same, other = call("echo", text="same"), call("echo", text="other")
    replies = iter([same, same, other, "summary", same, BOXED, BOXED])
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


async def test_a_budget_spent_by_the_closing_request_does_not_restart(server, tmp_path) -> None:
    calls: list[int] = []

    def tokens(event: dict[str, Any]) -> None:
        if event["event"] == "model_call":
            calls.append(event["prompt_tokens"] + event["completion_tokens"])

    srv = server(Attempts(failing=9, unboxed=True))
    with controlling(RunControl(on_event=tokens)):  # measure: the first call's tokens
        await run_loop(make_loop(srv, TOOLS, max_restarts=0), tmp_path, thread="probe")
    # A budget the first call leaves unspent and the closing reply spends.
    control = RunControl(budgets=Budgets(max_tokens_total=calls[0] + 1))
    before = len(srv.requests)
    with controlling(control):
        values = await run_loop(make_loop(srv, TOOLS, max_restarts=3), tmp_path)
    # No summary and no attempt 2 (whose first step would close at once on its bare
    # task, two user messages in a row): the run ends on the closing reply, saying
    # what stopped it from starting again.
    assert len(srv.requests) - before == 2
    assert not values.get("attempts")
    assert values["stop_reason"] == "max_tokens_total" and values["answer"] is None


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


async def test_a_run_resumed_with_fewer_restarts_closes_the_attempt_instead(
    server, tmp_path
) -> None:
    policy = Attempts(failing=9)
    failed: list[int] = []

    def summary_fails_once(body: dict[str, Any]) -> Any:
        if body.get("continue_final_message") and not failed:
            failed.append(1)
            return Fault(status=503, message="down")  # the run stops inside restart
        return policy(body)

    srv = server(summary_fails_once)
    with pytest.raises(ModelServerError):
        await run_loop(make_loop(srv, TOOLS, max_turns=1, max_restarts=2), tmp_path)
    before = len(srv.requests)
    loop = make_loop(srv, TOOLS, max_turns=1, max_restarts=0)
    values = await run_loop(loop, tmp_path, resume=True)
    after = srv.requests[before:]
    # No restart any more: the closing request the attempt skipped is made after all.
    assert len(after) == 1 and after[0]["messages"][-1]["content"] == closing_request(QUESTION)
    assert values["phase"] == "done" and values["stop_reason"] == "max_turns"
    assert not values.get("attempts")


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
