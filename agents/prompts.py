"""Prompts, in our own wording, in the structure the MiroThinker weights expect.

System prompt: introduction with today's date, the protocol's tool section
(MiroThinker only; native models get tools through the API), a general
objective and an agent-specific one. A user can replace the whole system
prompt with a template file using ``$today``, ``$tools`` and ``$objective``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from string import Template

from mirograph.agents.mirothinker.tool_prompt import ToolSpec, render_tool_section

INTRO = (
    "In this environment you have access to a set of tools you can use to answer the"
    " user's question. You may use one tool per message, and will receive the result of"
    " that tool use in the user's next message. You accomplish a given task iteratively,"
    " each tool use informed by the result of the previous one. Today is: $today"
)

GENERAL_OBJECTIVE = """# General Objective

You accomplish a given task iteratively, breaking it down into clear steps and working \
through them methodically.

1. Analyze the task and set clear, achievable sub-goals in a logical order.
2. Work through the sub-goals one at a time, using one tool per step when a tool helps.
3. Check every intermediate result against the task before building on it.
4. When the task is solved, give the final answer without calling a tool."""

OBJECTIVES: dict[str, str] = {
    "main": (
        "# Agent Specific Objective\n\nYou are the main agent. Solve the user's task,"
        " using the tools available to you whenever they help, and verify your findings"
        " before you answer."
    ),
    "browsing": (
        "# Agent Specific Objective\n\nYou are a browsing agent. Retrieve factual,"
        " verifiable information for the sub-task you are given, from the sources your"
        " tools reach. Report only what you found, with where you found it; do not"
        " speculate and do not invent content."
    ),
    "coding": (
        "# Agent Specific Objective\n\nYou are a coding agent. Solve the sub-task you are"
        " given by writing and running code, and report the results you observed."
    ),
    "reasoning": (
        "# Agent Specific Objective\n\nYou are a reasoning agent. Think through the"
        " sub-task you are given carefully and report a well-justified conclusion."
    ),
    "sub-agent": (
        "# Agent Specific Objective\n\nYou are a sub-agent. Work on the sub-task you are"
        " given with the tools available to you, and report what you found, marking"
        " anything uncertain; do not invent content."
    ),
}

TASK_SUFFIX = (
    "You should follow the format instruction in the request strictly and wrap the final"
    " answer in \\boxed{}."
)

#: Opens a sub-agent's closing request (the reference's browsing agent has it; its
#: main agent does not): the report it asks for is an instruction, not a tool result.
CLOSING_HEADER = "This is a direct instruction to you (the assistant), not a tool result."
#: Opens the main agent's closing request.
MAIN_CLOSING_OPENING = "Your work on this task ends now; you may not call any more tools."

ANSWER_RULES = """Answer format rules:
- If the answer is a number, write it as digits, without commas, units or symbols unless \
the question asks for them.
- If the answer is a string, use as few words as possible, without articles or \
abbreviations unless the question asks for them.
- If the answer is a list, write a comma-separated list following the rules above for \
each element.
- No trailing punctuation."""


def system_prompt(
    *,
    today: str,
    role: str = "main",
    tools: Sequence[ToolSpec] = (),
    objective: str | None = None,
    template: Path | None = None,
) -> str:
    """Render the system prompt for one agent; ``tools`` empty for native models."""
    tool_section = render_tool_section(tools)
    agent_objective = objective or OBJECTIVES.get(role, OBJECTIVES["main"])
    if template is not None:
        return Template(template.read_text(encoding="utf-8")).safe_substitute(
            today=today, tools=tool_section, objective=agent_objective
        )
    parts = [Template(INTRO).substitute(today=today), tool_section, GENERAL_OBJECTIVE]
    parts.append(agent_objective)
    return "\n\n".join(part for part in parts if part)


#: A sub-agent reports back instead of boxing an answer.
SUBTASK_SUFFIX = (
    "Give the answer to this sub-task with the supporting details you found and where each"
    " came from."
)


def task_message(question: str, *, role: str = "main") -> str:
    """The first user message: the task, then the answer-format request (a main agent)
    or the request for a supported answer (a sub-agent)."""
    if role == "main":
        return f"{question.rstrip()}\n{TASK_SUFFIX}"
    return f"{question.rstrip()}\n\n{SUBTASK_SUFFIX}"


def closing_request(question: str, *, role: str = "main") -> str:
    """The last request to an agent: summarise and answer, with no more tool calls.

    A sub-agent is asked for a report under ``CLOSING_HEADER``; the main agent for
    its boxed answer, with no header (as the reference agent asks them).
    """
    if role != "main":
        return (
            f"{CLOSING_HEADER}\n\nYour work on this sub-task ends now; you may not call"
            " any more tools. Write a structured report of everything you found for the"
            " sub-task below: the facts, where each came from, and partial or uncertain"
            " findings marked as such. Do not invent content.\n\n"
            f"Sub-task: {question.strip()}"
        )
    return (
        f"{MAIN_CLOSING_OPENING} Summarise what you found, then give your final answer wrapped in"
        " \\boxed{}. If you could not find the answer, give your best-supported guess"
        f" in \\boxed{{}}.\n\nThe original question was:\n{question.strip()}\n\n"
        f"{ANSWER_RULES}"
    )


def is_closing_request(text: str | None) -> bool:
    """Whether a user message is a closing request (either kind), by its fixed opening."""
    return isinstance(text, str) and text.startswith((CLOSING_HEADER, MAIN_CLOSING_OPENING))


# -- restarts -----------------------------------------------------------------

#: Asked after an attempt ended with no boxed answer (restarts with a summary, the
#: v1.0 and v1.5 rule): what the next attempt should know. No tools; the reply
#: continues ``FAILURE_SUMMARY_PREFIX``.
FAILURE_SUMMARY_REQUEST = """This attempt at the task is over and it ended without a \
final answer. Do not call any tool. Write a short account of it for a fresh attempt at \
the same task:

Failure type: one of
  - incomplete: the turns ran out before the work was done
  - blocked: tools kept failing, or information that was needed could not be found
  - misdirected: the approach was wrong
  - format_missed: the answer was found but not given in \\boxed{}
What happened: the approach taken, and why it did not reach a final answer.
Useful findings: the facts, intermediate results and conclusions worth reusing."""

#: The reply to ``FAILURE_SUMMARY_REQUEST`` begins with this thinking, already closed
#: (the reference agent's shape): the model writes the summary itself after it, in
#: the three sections, with no tool call.
FAILURE_SUMMARY_PREFIX = (
    "<think>\nI am to write a structured account of this attempt now, without calling any"
    " tool and without any tool-call syntax, from the conversation above only. It has"
    ' three sections and starts with "Failure type:":\n\n'
    "* Failure type: incomplete, blocked, misdirected or format_missed\n"
    "* What happened: the approach taken, and why it did not reach a final answer\n"
    "* Useful findings: the facts, intermediate results and conclusions worth reusing"
    "\n</think>\n\n"
)


def restart_question(question: str, summaries: Sequence[str | None]) -> str:
    """The task of a restarted attempt: the question, then what each earlier attempt
    tried and found, numbered by attempt (``summaries[k]`` is attempt k+1's; None:
    that attempt left none). No summary at all: the question alone, as 1.7 restarts."""
    if not any(summaries):
        return question
    items = "".join(
        f"[Attempt {number}]\n{summary.strip()}\n\n"
        for number, summary in enumerate(summaries, 1)
        if summary
    )
    return (
        f"{question.rstrip()}\n\n=== Earlier attempts ===\nEarlier attempts at this task"
        " ended without an answer. What each one tried and found:\n\n"
        f"{items}=== End of earlier attempts ===\n\nTake a different approach this time,"
        " and reuse what was found.\n"
    )
