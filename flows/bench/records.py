"""One attempt's line in ``results.jsonl``: what scoring, plots and outputs read.

The harness writes one line per finished attempt as it is judged; the file is
also how a rerun of the same ``bench`` command knows what is done.
"""

from __future__ import annotations

from typing import Any, TypedDict


class AttemptResult(TypedDict):
    """A judged attempt (``k``-th run of a task)."""

    task_id: str
    #: 1..K: which of the K runs of the task this is.
    attempt: int
    #: The mirograph run (``mirograph show RUN_ID``).
    run_id: str
    question: str
    #: The boxed answer the run gave; None: it ended without one.
    answer: str | None
    ground_truth: str
    #: True only for a ``correct`` verdict (a ``judge_error`` is False).
    correct: bool
    #: ``Verdict.as_record()``: verdict, method, model, prompt_version, detail.
    judge: dict[str, Any]
    #: The task's breakdown key (GAIA level, topic); None where the benchmark has none.
    group: str | None
    #: The entry agent's turns and tool calls over the whole run (all its restarts).
    turns: int
    tool_calls: int
    prompt_tokens: int
    completion_tokens: int
    wall_s: float
    #: The run's stop reason (``answered``, ``max_turns``, ...), or its status when it
    #: did not complete (``no_answer``, ``failed``).
    stop_reason: str | None
    #: How many times the agent restarted the task (the flow's ``max_restarts`` rule):
    #: 0 means the first attempt's answer is the run's answer.
    restarts: int
