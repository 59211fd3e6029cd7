"""Rollbacks, length retries and the duplicate-query set, over HTTP against sim-model.

Each rollback test asserts the exact requests the server received: a resample
is the request the rolled-back reply answered, byte for byte (what the model
sees is what it would have seen had the bad turn never happened).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import ToolException, tool
from support.loop_kit import call, make_loop, run_loop, scripted, servers

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import closing_request
from mirograph.agents.sim.scripting import Fault, SimReply
from mirograph.agents.sim.server import SimServer
from mirograph.agents.tools.base import DEDUPE_KEY, on_server
from mirograph.errors import ModelUnavailableError
from mirograph.flows.loader import validate_flow
from mirograph.flows.runner import run_report, start_run

ANSWER = "Done.</think>\n\n\\boxed{42}"
REFUSAL = "Hmm.</think>\n\nI\u2019m sorry, but I can\u2019t help with that."
LOOP = "Thinking " + "and thinking, over and over again, the same words. " * 6


@tool
def search(q: str) -> str:
    """Search the web for `q`."""
    return f"results for {q}"


@tool
def scrape(url: str, info_to_extract: str) -> str:
    """Read `url` and tell `info_to_extract`."""
    if "down" in url:
        raise ToolException(f"{url} did not answer")
    return f"{info_to_extract} of {url}"


search.metadata = {DEDUPE_KEY: ["q"]}
scrape.metadata = {DEDUPE_KEY: ["url", "info_to_extract"]}
scrape.handle_tool_error = False
TOOLS = [on_server(search, "lab"), on_server(scrape, "lab")]
server = pytest.fixture(servers)


def closing(body: dict[str, Any]) -> bool:
    """Whether ``body`` is the main agent's closing request (``run_loop``'s question)."""
    return body["messages"][-1]["content"] == closing_request("What is it?")


def working(srv: Any) -> list[dict[str, Any]]:
    """The bodies of the working requests (the closing request left out)."""
    return [body for body in srv.requests if not closing(body)]


def turn_texts(body: dict[str, Any]) -> list[str]:
    """The assistant turns a request shows the model."""
    return [m["content"] for m in body["messages"] if m["role"] == "assistant"]


@pytest.mark.parametrize(
    "bad",
    [
        REFUSAL,
        "Out of time.</think>\n\nGiven the time constraint, I stop.",
        LOOP,
        call("search", q="a").removesuffix("</use_mcp_tool>"),
        "Hmm.</think>\n\n<use_mcp_tool>\n<server_name>lab</server_name>",
    ],
    ids=["refusal", "time-constraint", "degenerate", "unclosed-call", "malformed"],
)
async def test_a_bad_reply_is_resampled_with_the_identical_request(
    server, tmp_path, bad: str
) -> None:
    srv = server(scripted([call("search", q="a"), bad, call("search", q="b")], ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    stats = values["stats"]
    assert (stats["rollbacks"], stats["turns"], stats["tool_calls"]) == (1, 3, 2)
    _, bad_turn, resample, last = working(srv)
    assert resample == bad_turn  # the whole body: messages, budget, sampling
    assert json.dumps(resample) == json.dumps(bad_turn)  # byte for byte, in order
    assert turn_texts(last) == [call("search", q="a"), call("search", q="b")]
    assert not any(m.type == "ai" and m.text == bad for m in values["messages"])
    assert values["answer"] == "42"


@pytest.mark.parametrize(
    "reply",
    [
        "Hmm.</think>\n\nI'm sorry, but I can't find more. \\boxed{41}",  # plain ASCII
        "Hmm.</think>\n\nI am sorry, I cannot solve it fully. \\boxed{41}",
        "Hmm.</think>\n\nAs an AI, I think it is \\boxed{41}",
    ],
    ids=["ascii-apology", "i-am-sorry", "as-an-ai"],
)
async def test_other_apologies_are_answers_not_refusals(server, tmp_path, reply: str) -> None:
    srv = server(scripted([reply], ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert values["stats"]["rollbacks"] == 0
    assert values["stop_reason"] == "answered" and values["boxed"] == "41"
    assert len(working(srv)) == 1


async def test_after_4_rollbacks_in_a_row_the_reply_is_accepted_as_it_is(server, tmp_path) -> None:
    srv = server(scripted([REFUSAL] * 5, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert values["stats"]["rollbacks"] == 4 and values["stats"]["turns"] == 1
    assert len(working(srv)) == 5 and all(b == srv.requests[0] for b in working(srv))
    # The fifth refusal is the turn; having no call, it closes the agent.
    closing = srv.requests[5]["messages"]
    assert [m["role"] for m in closing] == ["system", "user", "assistant", "user"]
    assert closing[2]["content"] == REFUSAL
    assert values["stop_reason"] == "too_many_rollbacks"


async def test_a_malformed_reply_accepted_past_the_limit_closes_without_running(
    server, tmp_path
) -> None:
    malformed = call("search", q="{").replace('{"q": "{"}', "not json")
    srv = server(scripted([malformed] * 3, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS, max_rollbacks=2), tmp_path)
    stats = values["stats"]
    assert (stats["rollbacks"], stats["turns"], stats["tool_calls"]) == (2, 1, 0)
    assert not any(m.type == "tool" for m in values["messages"])
    closing = srv.requests[-1]["messages"]
    assert [m["role"] for m in closing[-2:]] == ["assistant", "user"]
    assert closing[-2]["content"] == malformed
    assert values["stop_reason"] == "too_many_rollbacks" and values["answer"] == "42"


async def test_the_streak_counts_rollbacks_in_a_row_only(server, tmp_path) -> None:
    replies = [REFUSAL] * 3 + [call("search", q="a")] + [REFUSAL] * 4 + [call("search", q="b")]
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert values["stats"]["rollbacks"] == 7  # 3, then 4 again: an accepted turn resets
    assert values["stats"]["turns"] == 3 and values["stop_reason"] == "answered"


async def test_a_resample_after_a_cut_asks_with_the_first_budget(server, tmp_path) -> None:
    replies = iter([SimReply("Partial", finish_reason="length"), REFUSAL, call("search", q="a")])
    srv = server(lambda body: next(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS, model={"max_tokens": 64}), tmp_path)
    cut, enlarged, resample, *_ = working(srv)
    assert enlarged["max_tokens"] > cut["max_tokens"]
    assert resample == cut  # the refusal's turn never happened: the first request again
    assert values["stats"]["rollbacks"] == 1 and values["stats"]["length_retries"] == 1


async def test_queries_are_compared_exactly(server, tmp_path) -> None:
    replies = [call("search", q="MiroThinker"), call("search", q=" mirothinker ")]
    replies += [call("search", q="MiroThinker"), call("search", q="other")]
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert values["stats"]["rollbacks"] == 1  # only the exact repeat
    assert values["queries"] == [
        'search:{"q": "MiroThinker"}',
        'search:{"q": " mirothinker "}',
        'search:{"q": "other"}',
    ]
    assert working(srv)[3] == working(srv)[2]  # the repeat's resample


async def test_a_scrape_is_keyed_by_url_and_the_information_asked(server, tmp_path) -> None:
    page = {"url": "https://a.example"}
    replies = [call("scrape", **page, info_to_extract="title")]
    replies += [call("scrape", **page, info_to_extract="author")]  # another question
    replies += [call("scrape", **page, info_to_extract="title")]  # a repeat
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    assert values["stats"]["rollbacks"] == 1 and values["stats"]["tool_calls"] == 2
    assert len(values["queries"]) == 2


async def test_a_query_is_recorded_only_when_its_call_succeeded(server, tmp_path) -> None:
    down = {"url": "https://down.example", "info_to_extract": "title"}
    # A failed call rolls its turn back; the fifth in a row is shown, not recorded.
    replies = [call("scrape", **down)] * 5 + [call("search", q="a")]
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    stats = values["stats"]
    assert (stats["rollbacks"], stats["turns"], stats["tool_calls"]) == (4, 3, 6)
    assert values["queries"] == ['search:{"q": "a"}']  # the failed scrape was not recorded


async def test_a_repeat_is_let_through_after_4_rollbacks_in_a_row(server, tmp_path) -> None:
    replies = [call("search", q="a"), *[call("search", q="a")] * 5]
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS), tmp_path)
    stats = values["stats"]
    assert stats["rollbacks"] == 4  # four resamples, then the fifth repeat runs
    assert stats["turns"] == 3 and stats["tool_calls"] == 2
    assert all(body == working(srv)[1] for body in working(srv)[1:6])
    assert values["queries"] == ['search:{"q": "a"}']


async def test_a_repeat_is_let_through_earlier_with_a_lower_duplicate_limit(
    server, tmp_path
) -> None:
    replies = [call("search", q="a"), *[call("search", q="a")] * 2]
    srv = server(scripted(replies, ANSWER))
    values = await run_loop(make_loop(srv, TOOLS, max_duplicate_rollbacks=1), tmp_path)
    assert values["stats"]["rollbacks"] == 1 and values["stats"]["tool_calls"] == 2


async def test_duplicate_set_survives_a_resume_in_a_new_graph(server, tmp_path) -> None:
    srv = server(scripted([call("search", q="first"), Fault(500)], ANSWER))
    with pytest.raises(ModelUnavailableError):  # the server fails at turn 2: run interrupted
        await run_loop(make_loop(srv, TOOLS), tmp_path)

    # A new loop object, as after a restart, continues the same thread.
    srv2 = server(scripted([call("search", q="first"), call("search", q="second")], ANSWER))
    values = await run_loop(make_loop(srv2, TOOLS), tmp_path, resume=True)
    assert values["queries"] == ['search:{"q": "first"}', 'search:{"q": "second"}']
    assert values["stats"]["rollbacks"] == 1  # the repeat of "first" was recognised
    assert values["stats"]["turns"] == 3 and values["answer"] == "42"


async def test_a_repeated_sub_task_is_rolled_back_once_its_report_came_back(
    home: Path, tmp_path: Path
) -> None:
    """A sub-agent's result is collected apart from the tools step: its query is
    recorded there too, once the report is back."""
    subtask = {"subtask": "Sub-task for browsing: find X."}
    delegate = "Delegating.</think>\n\n" + render_call(
        "agent-browsing", "search_and_browse", subtask
    )
    planner = iter([delegate, delegate, ANSWER])

    def policy(body: dict[str, Any]) -> Any:
        if body["messages"][1]["content"].startswith("Sub-task for browsing:"):
            return "Looked.</think>\n\nX is 42."
        return next(planner, ANSWER)

    flow = {
        "name": "team",
        "models": {"m": {"base_url": "", "max_tokens": 64}},
        "agents": {
            "planner": {"model": "m", "role": "main", "sub_agents": ["browsing"]},
            "browsing": {"model": "m", "max_turns": 2},
        },
        "entry": "planner",
    }
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(policy) as srv:
        flow["models"]["m"]["base_url"] = srv.base_url
        outcome = await start_run("What is X?", validate_flow(flow), run_id="r", store_url=store)
        report = await run_report("r", store_url=store)
    assert outcome.answer == "42"
    planner_requests = [r for r in srv.requests if r["messages"][1]["content"].startswith("What")]
    assert planner_requests[2] == planner_requests[1]  # the repeat's resample
    assert report["agents"]["planner"]["rollbacks"] == 1
    assert report["agents"]["browsing"]["turns"] == 1  # the sub-task ran once
