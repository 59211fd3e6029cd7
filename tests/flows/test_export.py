"""``mirograph export``: every turn of every agent, full tool results, usage per reply,
MiroFlow's task-log shape, and no secret in either format."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from support.examples_policy import verify
from support.testkit import Cli
from support.transcript_kit import QUESTION, SECRET, STEPS, TeamRun, team_run
from support.transcript_tools import page

from mirograph.agents.sim.server import SimServer
from mirograph.flows.events import events_path
from mirograph.flows.export import export_run, step_logs
from mirograph.flows.runner import compiled_run, get_run, open_store, run_report, start_run
from mirograph.flows.transcript import AgentCall, RunTranscript, load_transcripts
from mirograph.state.blobs import OFFLOAD_CHARS, blob_key
from mirograph.state.retention import OMITTED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASK_LOG_KEYS = {
    "status", "start_time", "end_time", "task_id", "input", "ground_truth",
    "final_boxed_answer", "final_judge_result", "judge_type", "error",
    "current_main_turn_id", "current_sub_agent_turn_id", "sub_agent_counter",
    "current_sub_agent_session_id", "env_info", "log_dir", "main_agent_message_history",
    "sub_agent_message_history_sessions", "step_logs", "trace_data",
}  # fmt: skip
TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture
async def run(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TeamRun:
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)
    return await team_run(tmp_path)


def lines_of(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


async def test_jsonl_has_every_turn_of_every_agent_with_full_results_and_usage(
    run: TeamRun,
) -> None:
    text = await export_run(run.run_id, "jsonl", store_url=run.store)
    records = lines_of(text)

    head = records[0]
    assert head["type"] == "run"
    assert (head["id"], head["question"], head["status"]) == ("story", QUESTION, "completed")
    assert head["answer"] == run.answer == "REPORT[browsing:3], REPORT[coding:1]"
    assert head["usage"]["model_calls"] == sum(len(r) for r in run.requests.values())
    assert head["wall_seconds"] > 0 and head["created_at"] <= head["updated_at"]

    agents = [r for r in records if r["type"] == "agent"]
    assert [(a["label"], a["parent"], a["depth"]) for a in agents] == [
        ("planner", None, 0),
        ("browsing#1", "planner", 1),
        ("coding#1", "planner", 1),
    ]
    planner_calls = next(
        r for r in records if r.get("agent") == "planner" and r.get("role") == "assistant"
    )["tool_calls"]
    assert [a["call_id"] for a in agents[1:]] == [c["id"] for c in planner_calls]
    assert all(a["status"] == "completed" and a["checkpoint_ns"] for a in agents[1:])

    for agent in ("planner", "browsing", "coding"):
        label = agent if agent == "planner" else f"{agent}#1"
        messages = [r for r in records if r["type"] == "message" and r["agent"] == label]
        assert [m["index"] for m in messages] == list(range(len(messages)))
        replies = [m for m in messages if m["role"] == "assistant"]
        # Every model call made is a stored reply, word for word, with the server's usage.
        said = [reply.replace(SECRET, "***") for reply in run.replies(agent)]
        assert [m["content"] for m in replies] == said
        assert [m["usage"] for m in replies] == run.usage(agent)
        assert all(m["finish_reason"] == "stop" for m in replies)
        assert [m["turn"] for m in replies] == list(range(1, len(replies) + 1))
        assert replies[-1]["phase"] == "close"

    browsing = [r for r in records if r.get("agent") == "browsing#1" and r.get("role") == "tool"]
    assert [(m["name"], m["status"]) for m in browsing] == [("fetch", "success")] * 3
    assert [m["content"] for m in browsing] == [page("browsing", n) for n in (1, 2, 3)]
    assert [m["turn"] for m in browsing] == [1, 2, 3]
    # Pages 1 and 2 left browsing's keep-1 window (the model saw the placeholder)...
    last_request = run.requests["browsing"][-1]["messages"]
    assert [m["content"] for m in last_request if m["role"] == "user"][1:3] == [OMITTED] * 2
    # ...and the store holds every page as a blob: the export read them back.
    assert len(page("browsing", 1)) > OFFLOAD_CHARS
    assert await stored_blob_refs(run, "browsing") == 3
    assert SECRET not in text


async def stored_blob_refs(run: TeamRun, agent: str) -> int:
    """Tool results of ``agent``'s call kept in the store as blob references."""
    async with open_store(run.store) as store:
        record = get_run(store, run.run_id)
        async with compiled_run(store, record) as compiled:
            top = await compiled.graph.aget_state(compiled.config, subgraphs=True)
            call = next(r for r in top.values["invocations"] if r["agent"] == agent)
            where = {
                "configurable": {"thread_id": run.run_id, "checkpoint_ns": call["checkpoint_ns"]}
            }
            values = (await compiled.graph.aget_state(where)).values
    return sum(blob_key(m) is not None for m in values["messages"])


async def test_miroflow_task_log_holds_the_wire_histories_of_every_agent(run: TeamRun) -> None:
    text = await export_run(run.run_id, "miroflow", store_url=run.store)
    log = json.loads(text)

    assert set(log) == TASK_LOG_KEYS
    assert (log["status"], log["task_id"], log["error"]) == ("success", "story", "")
    assert log["input"] == {"task_description": QUESTION, "task_file_name": ""}
    assert log["final_boxed_answer"] == run.answer
    assert TIME.match(log["start_time"]) and TIME.match(log["end_time"])
    assert (log["current_main_turn_id"], log["sub_agent_counter"]) == (3, 2)
    assert log["current_sub_agent_turn_id"] == STEPS["coding"] + 1
    assert log["current_sub_agent_session_id"] is None
    assert log["env_info"]["agents"]["browsing"]["keep_tool_results"] == 1
    assert "base_url" not in json.dumps(log["env_info"])

    # Main agent: exactly what its last request sent (its results were all within
    # keep-K), then the closing reply; tool results as one user message per turn.
    main = log["main_agent_message_history"]
    closing_request = run.requests["planner"][-1]["messages"]
    assert main["system_prompt"] == closing_request[0]["content"]
    sent = [*closing_request[1:], {"role": "assistant", "content": run.replies("planner")[-1]}]
    assert [flat(m) for m in main["message_history"]] == [scrubbed(m) for m in sent]
    assert all(m["content"][0]["type"] == "text" for m in main["message_history"])
    roles = [m["role"] for m in main["message_history"]]
    assert roles == ["user", "assistant"] * 4
    first_reply = main["message_history"][1]["content"][0]["text"]
    assert first_reply.count("<use_mcp_tool>") == 2
    reports = main["message_history"][2]["content"][0]["text"]
    assert reports == "REPORT[browsing:3]\nREPORT[coding:1]"

    sessions = log["sub_agent_message_history_sessions"]
    assert list(sessions) == ["agent-browsing_1", "agent-coding_2"]
    # Browsing: the wire form of its closing request with the omitted pages restored.
    browsing = sessions["agent-browsing_1"]
    request = run.requests["browsing"][-1]["messages"]
    assert browsing["system_prompt"] == request[0]["content"]
    expected = [m["content"] for m in request[1:]] + [run.replies("browsing")[-1]]
    assert expected[2] == expected[4] == OMITTED  # out of its keep-1 window when sent
    expected[2], expected[4], expected[6] = (page("browsing", n) for n in (1, 2, 3))
    assert [m["content"][0]["text"] for m in browsing["message_history"]] == expected

    steps = log["step_logs"]
    names = [s["step_name"] for s in steps]
    assert "Main Agent | Turn: 1 | LLM Call" in names
    assert "agent-browsing_1 | Turn: 2 | Tool Call" in names
    assert "agent-coding_2 | Turn: 1 | LLM Call" in names
    assert all(TIME.match(s["timestamp"]) and s["info_level"] == "info" for s in steps)
    assert log["trace_data"] == {}
    assert SECRET not in text


def flat(message: dict[str, Any]) -> dict[str, str]:
    return {"role": message["role"], "content": message["content"][0]["text"]}


def scrubbed(message: dict[str, Any]) -> dict[str, str]:
    return {"role": message["role"], "content": message["content"].replace(SECRET, "***")}


async def test_a_secret_the_model_repeated_is_neither_stored_nor_exported(run: TeamRun) -> None:
    transcript = await load_transcripts(run.run_id, store_url=run.store)
    planner = transcript.calls[0]
    # The model's reply and the tool's echo were both redacted before being stored.
    assert SECRET not in planner.messages[5].content
    assert "The key should be ***; checking." in planner.messages[5].content
    assert planner.messages[6].content == "search key in use: ***"
    db = Path(run.store.removeprefix("sqlite:///"))
    stored = b"".join(path.read_bytes() for path in db.parent.glob(f"{db.name}*"))
    assert SECRET.encode() not in stored
    for fmt in ("jsonl", "miroflow"):
        text = await export_run(run.run_id, fmt, store_url=run.store)
        assert SECRET not in text and "PLANTEDsecret" not in text
        assert "The key should be ***; checking." in text.replace("\\n", "\n")


async def test_without_an_events_file_step_logs_come_from_the_messages(run: TeamRun) -> None:
    events_path(run.run_id).unlink()
    log = json.loads(await export_run(run.run_id, "miroflow", store_url=run.store))
    steps = log["step_logs"]
    created = (await run_report(run.run_id, store_url=run.store))["created_at"]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
    assert steps[0]["step_name"] == "Main | Task Start"
    assert steps[0]["timestamp"] == started
    names = [s["step_name"] for s in steps]
    llm_calls = [n for n in names if n.startswith("agent-browsing_1 |") and "LLM Call" in n]
    assert llm_calls == [f"agent-browsing_1 | Turn: {n} | LLM Call" for n in (1, 2, 3, 4)] + [
        "agent-browsing_1 | Final Summary | LLM Call"
    ]
    tool_steps = [s for s in steps if s["step_name"].startswith("agent-browsing_1 | Turn")]
    assert sum("Tool Call" in s["step_name"] for s in tool_steps) == 3
    usage = next(s for s in steps if s["step_name"] == "Main Agent | Turn: 1 | LLM Call")
    assert usage["metadata"]["usage"] == run.usage("planner")[0]


def test_step_logs_from_an_events_file_name_sessions_by_namespace() -> None:
    def call(label: str, agent: str, depth: int, ns: str) -> AgentCall:
        return AgentCall(label, agent, None, depth, None, "t", "completed", "answered", {}, ns)

    transcript = RunTranscript(
        {"id": "r", "question": "Q", "status": "completed", "created_at": 0.0},
        [call("planner", "planner", 0, ""), call("browsing#1", "browsing", 1, "agent_browsing:a")],
    )
    ts = 1_700_000_000.0
    events = [
        {"event": "run_started", "ts": ts, "question": "Q", "flow": "f"},
        {"event": "agent_started", "ts": ts, "agent": "browsing", "ns": "agent_browsing:a",
         "subtask": "find it", "call_id": "c1"},
        {"event": "model_call", "ts": ts + 1, "agent": "planner", "ns": "", "turn": 1,
         "phase": "work", "outcome": "ok", "prompt_tokens": 10, "completion_tokens": 2,
         "cached_tokens": 4, "latency_ms": 5.0, "tool_calls": ["search_and_browse"]},
        {"event": "model_call", "ts": ts + 2, "agent": "browsing", "ns": "agent_browsing:a",
         "turn": 2, "phase": "work", "outcome": "rollback", "detail": "malformed call"},
        {"event": "tool_call", "ts": ts + 3, "agent": "browsing", "ns": "agent_browsing:a",
         "turn": 2, "tool": "fetch", "server": "s", "outcome": "error", "args": "{}",
         "result": "Tool call to fetch failed"},
        {"event": "agent_finished", "ts": ts + 4, "agent": "browsing", "ns": "agent_browsing:a",
         "status": "failed", "stop_reason": "error", "turns": 2},
        {"event": "run_paused", "ts": ts + 5, "reason": "server down"},
    ]  # fmt: skip
    steps = step_logs(transcript, events)
    assert [(s["step_name"], s["info_level"]) for s in steps] == [
        ("Main | Task Start", "info"),
        ("agent-browsing_1 | Session Start", "info"),
        ("Main Agent | Turn: 1 | LLM Call", "info"),
        ("agent-browsing_1 | Turn: 2 | LLM Call", "warning"),
        ("agent-browsing_1 | Turn: 2 | Tool Call", "error"),
        ("agent-browsing_1 | Session End", "error"),
        ("Main | Task End", "warning"),
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts + 1))
    assert steps[2]["timestamp"] == stamp
    assert "10 prompt tokens (4 cached)" in steps[2]["message"]
    assert steps[1]["metadata"] == {"session_id": "agent-browsing_1", "subtask": "find it"}
    assert steps[3]["message"].endswith("malformed call")
    assert steps[6]["message"] == "Task paused: server down"


async def test_a_custom_graph_exports_each_agent_call_as_a_session(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with SimServer(verify) as srv:
        monkeypatch.setenv("MIROGRAPH_BASE_URL", srv.base_url)
        ref = f"{EXAMPLES / 'verify_loop.py'}:build_graph"
        outcome = await start_run("Q?", ref, run_id="verify", store_url=store)
    assert outcome.answer == "42"
    log = json.loads(await export_run("verify", "miroflow", store_url=store))
    assert log["main_agent_message_history"] == {"system_prompt": "", "message_history": []}
    assert list(log["sub_agent_message_history_sessions"]) == [
        "agent-planner_1",
        "agent-researcher_2",
        "agent-verifier_3",
        "agent-researcher_4",
        "agent-verifier_5",
    ]
    second = log["sub_agent_message_history_sessions"]["agent-researcher_4"]["message_history"]
    assert "Verifier feedback: REJECT" in second[0]["content"][0]["text"]
    assert "<use_mcp_tool>" in second[1]["content"][0]["text"]
    records = lines_of(await export_run("verify", "jsonl", store_url=store))
    agents = [(r["label"], r["parent"], r["depth"]) for r in records if r["type"] == "agent"]
    assert agents == [
        ("planner#1", None, 1),
        ("researcher#1", None, 1),
        ("verifier#1", None, 1),
        ("researcher#2", None, 1),
        ("verifier#2", None, 1),
    ]


async def test_cli_export_writes_the_file_and_rejects_an_unknown_format(
    run: TeamRun, cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "story.json"
    done = cli("export", run.run_id, "--format", "miroflow", "-o", str(out), "--store", run.store)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["final_boxed_answer"] == run.answer
    assert SECRET not in out.read_text(encoding="utf-8")
    wrong = cli("export", run.run_id, "--format", "csv", "--store", run.store)
    assert wrong.returncode == 2 and "unknown export format 'csv'" in wrong.stderr
