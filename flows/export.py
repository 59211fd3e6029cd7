"""``mirograph export``: a run's full transcript, every agent, every turn, in full.

Two formats:

- ``jsonl``: one JSON object per line. A ``run`` line, then for each agent
  call (in call order) an ``agent`` line and one ``message`` line per stored
  message: full text (offloaded tool results restored, never keep-K omitted),
  tool calls, and token usage per model reply. A message's ``turn`` is ``k``
  for the k-th reply and the results answering it, 0 for the system prompt
  and the task; the closing request and its reply are one more turn, marked
  ``"phase": "close"``. Rolled-back replies are not stored, so not exported.
  Every message also says its ``attempt`` (always; 1 unless the agent
  restarted): an entry agent with ``max_restarts`` keeps all its attempts in
  one history, each opening with the system prompt and its task, its turns
  numbered from 1 again; the failure-summary request and its reply that end
  a failed attempt are one more turn of it, marked ``"phase": "summary"``.
  An ``agent`` line's ``parent_turn`` is that turn number within the parent's
  attempt ``parent_attempt``. The ``run`` line has ``attempts``, as
  ``show --json`` lists them.
- ``miroflow``: the task-log JSON of the MiroThinker agent (MiroFlow's
  ``TaskLog``), so runs can be read by the tools made for those logs. Each
  agent's history is the wire form its weights see (system prompt apart; tool
  results as one user message per turn, none omitted). Status: ``success``
  for a completed run, ``failed`` for a failed one, ``running`` for a run
  that is running or paused (MiroFlow's word for a task not finished). A
  custom graph has no main agent: its main history is empty and each of its
  agent calls is a sub-agent session. A run whose entry agent restarted is
  logged as MiroFlow logs its last try: the main history is the last
  attempt's (its system prompt and task on), ``current_main_turn_id`` its
  turns; ``trace_data`` has ``attempts`` (``show --json``'s rows, each
  earlier one with its own ``main_agent_message_history``) and, when an
  attempt was summarised, the last summary as ``failure_experience_summary``
  (MiroFlow's key). A run with one attempt has an empty ``trace_data``.

Every string of both formats passes through ``scrub``: no API key leaves in an
export, even one that a tool echoed or a model repeated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from mirograph.agents.mirothinker.chat_model import to_openai_messages
from mirograph.flows.events import run_events
from mirograph.flows.runner import run_dir
from mirograph.flows.transcript import (
    AgentCall,
    Place,
    RunTranscript,
    Turn,
    attempt_slices,
    load_transcripts,
    message_places,
    turns_of,
)
from mirograph.graphs.sub_agents import tool_name_of
from mirograph.state.redact import scrub

FORMATS = ("jsonl", "miroflow")
#: MiroFlow's time format.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAIN = "Main Agent"


async def export_run(run_id: str, fmt: str, *, store_url: str | None = None) -> str:
    """The run in format ``fmt`` (one of ``FORMATS``), as text ending with a newline."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    transcript = await load_transcripts(run_id, store_url=store_url)
    if fmt == "jsonl":
        return "".join(_dumps(scrub(record)) + "\n" for record in jsonl_records(transcript))
    events = await run_events(run_id, store_url=store_url)
    return json.dumps(scrub(miroflow_log(transcript, events)), ensure_ascii=False, indent=2) + "\n"


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


# -- jsonl ---------------------------------------------------------------------------


def jsonl_records(transcript: RunTranscript) -> Iterator[dict[str, Any]]:
    """The run, then each agent call followed by its messages (not yet scrubbed)."""
    report = transcript.report
    yield {
        "type": "run",
        "id": report["id"],
        "question": report["question"],
        "flow": report["flow"],
        "status": report["status"],
        "reason": report.get("reason"),
        "answer": report.get("answer"),
        "stop_reason": report.get("stop_reason"),
        "usage": report.get("usage"),
        "agents": report.get("agents"),
        "attempts": report.get("attempts") or [],
        "wall_seconds": report.get("wall_seconds"),
        "created_at": report.get("created_at"),
        "updated_at": report.get("updated_at"),
    }
    turns = {call.label: turns_of(call.messages) for call in transcript.calls}
    for call in transcript.calls:
        yield {
            "type": "agent",
            "label": call.label,
            "agent": call.agent,
            "parent": call.parent,
            "depth": call.depth,
            "call_id": call.call_id,
            "subtask": call.subtask,
            "status": call.status,
            "stop_reason": call.stop_reason,
            "stats": call.stats,
            "checkpoint_ns": call.checkpoint_ns,
            "protocol": call.protocol,
            **_parent_place(call, turns.get(call.parent or "", [])),
        }
        for index, (message, place) in enumerate(
            zip(call.messages, message_places(call.messages), strict=True)
        ):
            yield _message_record(call.label, index, message, place)


def _parent_place(call: AgentCall, turns: list[Turn]) -> dict[str, int | None]:
    """The parent's turn that made ``call`` (``turns``: the parent's), numbered
    within the parent's attempt."""
    number = call.parent_turn
    if number is None or not 0 < number <= len(turns):
        return {"parent_turn": number, "parent_attempt": 1 if number is not None else None}
    turn = turns[number - 1]
    return {"parent_turn": turn.in_attempt, "parent_attempt": turn.attempt}


def _message_record(label: str, index: int, message: BaseMessage, place: Place) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "message",
        "agent": label,
        "index": index,
        "role": _role(message),
        "content": _text(message),
        "turn": place.turn,
        "attempt": place.attempt,
    }
    if place.phase is not None:
        record["phase"] = place.phase
    if isinstance(message, AIMessage):
        record["tool_calls"] = [
            {"id": c.get("id"), "name": c["name"], "args": c.get("args")}
            for c in message.tool_calls
        ]
        if message.invalid_tool_calls:
            record["invalid_tool_calls"] = [
                {
                    "id": c.get("id"),
                    "name": c.get("name"),
                    "args": c.get("args"),
                    "error": c.get("error"),
                }
                for c in message.invalid_tool_calls
            ]
        reasoning = message.additional_kwargs.get("reasoning_content")
        if reasoning:
            record["reasoning"] = reasoning
        record["usage"] = usage_of(message)
        record["finish_reason"] = message.response_metadata.get("finish_reason")
    elif isinstance(message, ToolMessage):
        record["tool_call_id"] = message.tool_call_id
        record["name"] = message.name
        record["status"] = message.status
    return record


def usage_of(message: AIMessage) -> dict[str, int] | None:
    """The token counts the server reported for this reply."""
    usage = message.usage_metadata
    if not usage:
        return None
    details = usage.get("input_token_details") or {}
    return {
        "prompt_tokens": usage.get("input_tokens", 0),
        "completion_tokens": usage.get("output_tokens", 0),
        "cached_tokens": details.get("cache_read", 0) or 0,
    }


def _role(message: BaseMessage) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, HumanMessage):
        return "user"
    return message.type


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", "")) for part in message.content
    )


# -- miroflow ------------------------------------------------------------------------


def miroflow_log(transcript: RunTranscript, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """MiroFlow's task log of the run (not yet scrubbed)."""
    report = transcript.report
    calls = transcript.calls
    entry = calls[0] if calls and calls[0].depth == 0 else None
    sessions = session_ids(transcript)
    servers = _servers_from_events(events)
    subs = [call for call in calls if call is not entry]
    attempts = report.get("attempts") or []
    slices = attempt_slices(entry.messages) if entry is not None else []
    restarted = len(attempts) > 1 and len(slices) > 1
    main_turns = int(entry.stats.get("turns", 0)) if entry else 0
    if restarted:
        main_turns = int(attempts[-1]["turns"])
    status = report["status"]
    return {
        "status": {"completed": "success", "failed": "failed"}.get(status, "running"),
        "start_time": _time(report.get("created_at")),
        "end_time": "" if status == "running" else _time(report.get("updated_at")),
        "task_id": report["id"],
        "input": {"task_description": report["question"], "task_file_name": ""},
        "ground_truth": "",
        "final_boxed_answer": report.get("answer") or "",
        "final_judge_result": "",
        "judge_type": "",
        "error": report.get("reason") or "",
        "current_main_turn_id": main_turns,
        "current_sub_agent_turn_id": int(subs[-1].stats.get("turns", 0)) if subs else 0,
        "sub_agent_counter": len(subs),
        "current_sub_agent_session_id": None,
        "env_info": _env_info(transcript),
        "log_dir": str(run_dir(report["id"])),
        "main_agent_message_history": wire_history(
            entry, transcript, servers, slices[-1] if restarted else None
        )
        if entry
        else {"system_prompt": "", "message_history": []},
        "sub_agent_message_history_sessions": {
            sessions[call.label]: wire_history(call, transcript, servers) for call in subs
        },
        "step_logs": step_logs(transcript, events),
        "trace_data": _trace_data(attempts, slices, entry, transcript, servers)
        if restarted and entry is not None
        else {},
    }


def _trace_data(
    attempts: list[dict[str, Any]],
    slices: list[list[BaseMessage]],
    entry: AgentCall,
    transcript: RunTranscript,
    servers: dict[str, str],
) -> dict[str, Any]:
    """A restarted run's attempts (each earlier one with its history, as the main
    history is written) and the last failure summary, under MiroFlow's key."""
    rows = [dict(row) for row in attempts]
    for row, messages in zip(rows[:-1], slices[:-1], strict=False):
        row["main_agent_message_history"] = wire_history(entry, transcript, servers, messages)
    data: dict[str, Any] = {"attempts": rows}
    summaries = [row["summary"] for row in attempts if row.get("summary")]
    if summaries:
        data["failure_experience_summary"] = summaries[-1]
    return data


def session_ids(transcript: RunTranscript) -> dict[str, str]:
    """Label -> MiroFlow session id: ``agent-<name>_<k>``, one counter over all
    sub-agent calls in call order (as MiroFlow numbers them); the entry is the main agent."""
    ids: dict[str, str] = {}
    count = 0
    for call in transcript.calls:
        if call.depth == 0:
            ids[call.label] = MAIN
        else:
            count += 1
            ids[call.label] = f"agent-{call.agent}_{count}"
    return ids


def _has_entry(transcript: RunTranscript) -> bool:
    return bool(transcript.calls) and transcript.calls[0].depth == 0


def wire_history(
    call: AgentCall,
    transcript: RunTranscript,
    servers: dict[str, str],
    messages: Sequence[BaseMessage] | None = None,
) -> dict[str, Any]:
    """The call's history (or ``messages``, a part of it: one attempt) as the model
    sees it on the wire, no result omitted.

    A MiroThinker agent's replies already hold their ``<use_mcp_tool>`` blocks;
    a native agent's calls are written in that shape by the same converter,
    with the servers its tools live on.
    """
    history = call.messages if messages is None else list(messages)
    wire = to_openai_messages(history, _call_servers(call, transcript, servers))
    system = ""
    if wire and wire[0]["role"] == "system":
        system, wire = wire[0]["content"], wire[1:]
    return {
        "system_prompt": system,
        "message_history": [
            {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in wire
        ],
    }


def _call_servers(
    call: AgentCall, transcript: RunTranscript, servers: dict[str, str]
) -> dict[str, str]:
    """Tool name -> server for one agent: its replies, its sub-agents, then the events."""
    found = dict(servers.get(call.agent) or {})
    flow = transcript.flow
    if flow is not None and call.agent in flow.agents:
        for sub in flow.agents[call.agent].sub_agents:
            config = flow.agents[sub]
            found[tool_name_of(sub, config.role, config.tool_name)] = f"agent-{sub}"
    for message in call.messages:
        if isinstance(message, AIMessage):
            found.update(message.response_metadata.get("servers") or {})
    return found


def _servers_from_events(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Agent -> {tool: server} as the tool-call events recorded them."""
    found: dict[str, dict[str, str]] = {}
    for event in events:
        server = event.get("server")
        if event.get("event") == "tool_call" and server and server != "unknown":
            found.setdefault(str(event.get("agent")), {})[str(event.get("tool"))] = str(server)
    return found


def _env_info(transcript: RunTranscript) -> dict[str, Any]:
    """What ran the task: engine, flow, and per agent its model and budgets (no URLs, no keys)."""
    info: dict[str, Any] = {"engine": "mirograph", "flow": transcript.report["flow"]}
    flow = transcript.flow
    if flow is not None:
        info["agents"] = {
            name: {
                "model": flow.models[agent.model].model,
                "protocol": flow.models[agent.model].protocol,
                "max_turns": agent.max_turns,
                "keep_tool_results": agent.keep_tool_results,
            }
            for name, agent in flow.agents.items()
        }
    return info


def _time(ts: Any) -> str:
    if not ts:
        return ""
    return time.strftime(TIME_FORMAT, time.localtime(float(ts)))


# -- step logs -------------------------------------------------------------------------

_AGENT_EVENTS = {"model_call", "tool_call", "agent_started", "agent_finished"}
_LEVELS = {"ok": "info", "rollback": "warning", "cut": "warning", "error": "error"}


def step_logs(transcript: RunTranscript, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """MiroFlow step records: from the run's events when they trace its agents, else
    from its messages (timestamps then unknown: the run's start is used)."""
    if any(str(event.get("event")) in _AGENT_EVENTS for event in events):
        names = _names_by_ns(transcript)
        steps, started = [], set()
        for event in events:
            if (step := _event_step(event, names)) is None:
                continue
            if event.get("event") == "agent_started":
                if event.get("ns") in started:  # a call in flight goes on after a resume
                    step["step_name"] = step["step_name"].replace("Session Start", "Session Resume")
                started.add(event.get("ns"))
            steps.append(step)
        return steps
    return _message_steps(transcript)


def _names_by_ns(transcript: RunTranscript) -> dict[str, str]:
    sessions = session_ids(transcript)
    names = {call.checkpoint_ns: sessions[call.label] for call in transcript.calls}
    if _has_entry(transcript):
        names[""] = MAIN
    return names


def _step(
    name: str, message: str, ts: Any, level: str = "info", metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "step_name": name,
        "message": message,
        "timestamp": _time(ts),
        "info_level": level,
        "metadata": metadata or {},
    }


def _event_step(event: dict[str, Any], names: dict[str, str]) -> dict[str, Any] | None:
    kind = str(event.get("event") or "")
    ts = event.get("ts")
    meta = {k: v for k, v in event.items() if k not in ("event", "ts", "run_id")}
    ns = event.get("ns")
    who = names.get(ns, f"agent-{event.get('agent')}") if ns is not None else MAIN
    turn = event.get("turn")
    if kind in ("run_started", "run_resumed"):
        verb = "Start" if kind == "run_started" else "Resume"
        return _step(
            f"Main | Task {verb}", f"{verb} task: {event.get('question')}", ts, "info", meta
        )
    if kind.startswith("run_"):
        status = kind.removeprefix("run_")
        level = {"completed": "info", "paused": "warning"}.get(status, "error")
        detail = event.get("answer") if status == "completed" else event.get("reason")
        return _step("Main | Task End", f"Task {status}: {detail}", ts, level, meta)
    if kind == "agent_started":
        if who == MAIN:
            return _step(f"{MAIN} | Start", f"Starting on: {event.get('subtask') or ''}", ts)
        subtask = str(event.get("subtask") or "")
        return _step(
            f"{who} | Session Start",
            f"Starting {who} for subtask: {subtask[:100]}{'...' if len(subtask) > 100 else ''}",
            ts,
            "info",
            {"session_id": who, "subtask": subtask},
        )
    if kind == "agent_finished":
        level = "error" if event.get("status") == "failed" else "info"
        text = (
            f"{event.get('status')} ({event.get('stop_reason')}) after {event.get('turns')} turns"
        )
        name = f"{MAIN} | Finished" if who == MAIN else f"{who} | Session End"
        return _step(name, f"Ending {who}: {text}", ts, level, meta)
    if kind == "model_call":
        level = _LEVELS.get(str(event.get("outcome")), "info")
        return _step(
            _call_step(who, turn, event.get("phase")), _model_message(event), ts, level, meta
        )
    if kind == "restarted":
        text = (
            f"Attempt {event.get('attempt')} starts again from the task after"
            f" {event.get('after')} ({event.get('turns')} turns)"
        )
        return _step(f"{who} | Restart", text, ts, "warning", meta)
    if kind == "tool_call":
        level = "error" if event.get("outcome") == "error" else "info"
        text = (
            f"{event.get('server')}.{event.get('tool')}({event.get('args') or ''})"
            f" -> {event.get('result') or ''}"
        )
        return _step(f"{who} | Turn: {turn} | Tool Call", text, ts, level, meta)
    return _step(f"{who} | {kind}", json.dumps(meta, ensure_ascii=False, default=str), ts, "info")


def _call_step(who: str, turn: Any, phase: Any) -> str:
    """A model call's step name: a work turn's, the closing request's (MiroFlow's final
    summary), or the failure summary's that ends an attempt before a restart."""
    if phase == "close":
        return f"{who} | Final Summary | LLM Call"
    if phase == "summary":
        return f"{who} | Failure Summary | LLM Call"
    return f"{who} | Turn: {turn} | LLM Call"


def _model_message(event: dict[str, Any]) -> str:
    parts = [
        f"{event.get('outcome')}: {event.get('prompt_tokens') or 0} prompt tokens"
        f" ({event.get('cached_tokens') or 0} cached),"
        f" {event.get('completion_tokens') or 0} completion tokens,"
        f" {event.get('latency_ms') or 0} ms"
    ]
    if event.get("tool_calls"):
        parts.append("tool calls: " + ", ".join(map(str, event["tool_calls"])))
    if event.get("detail"):
        parts.append(str(event["detail"]))
    return "; ".join(parts)


def _message_steps(transcript: RunTranscript) -> list[dict[str, Any]]:
    """Steps read from the stored histories: model replies and tool results, in order."""
    report = transcript.report
    ts = report.get("created_at")
    sessions = session_ids(transcript)
    steps = [_step("Main | Task Start", f"Start task: {report['question']}", ts)]
    for call in transcript.calls:
        who = sessions[call.label]
        if who != MAIN:
            subtask = call.subtask or ""
            steps.append(
                _step(
                    f"{who} | Session Start",
                    f"Starting {who} for subtask: {subtask[:100]}"
                    f"{'...' if len(subtask) > 100 else ''}",
                    ts,
                    "info",
                    {"session_id": who, "subtask": subtask},
                )
            )
        for turn in turns_of(call.messages):
            if turn.attempt > 1 and turn.in_attempt == 1:
                steps.append(
                    _step(f"{who} | Restart", f"Attempt {turn.attempt} starts again", ts, "warning")
                )
            usage = usage_of(turn.reply) or {}
            event = {
                "outcome": "ok",
                "latency_ms": None,
                "tool_calls": [c["name"] for c in turn.reply.tool_calls],
                **usage,
            }
            phase = "close" if turn.closing else "summary" if turn.summary else None
            name = _call_step(who, turn.in_attempt, phase)
            steps.append(_step(name, _model_message(event), ts, "info", {"usage": usage}))
            for result in turn.results:
                level = "error" if result.status == "error" else "info"
                text = f"{result.name}: {' '.join(_text(result).split())[:200]}"
                steps.append(_step(f"{who} | Turn: {turn.in_attempt} | Tool Call", text, ts, level))
        if who != MAIN:
            steps.append(
                _step(
                    f"{who} | Session End",
                    f"Ending {who}: {call.status} ({call.stop_reason})",
                    ts,
                    "error" if call.status == "failed" else "info",
                    {"session_id": who},
                )
            )
    status = report["status"]
    level = {"completed": "info", "failed": "error"}.get(status, "warning")
    end = report.get("answer") if status == "completed" else report.get("reason")
    steps.append(_step("Main | Task End", f"Task {status}: {end}", report.get("updated_at"), level))
    return steps
