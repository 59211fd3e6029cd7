"""A sim-model policy for restart tests: attempts fail until ``answer_in``.

Stateless: the attempt is read from the task (each restart's task carries one
``[Attempt k]`` summary per earlier attempt), the turn from the assistant
messages. A working turn calls ``lookup`` with topic ``attempt<k>`` and step =
the turn, until attempt ``answer_in``, whose second turn answers and whose
closing reply boxes it (an attempt whose turns ran out is summarised without a
closing request); a summary request (continuing the given thinking) gets a
summary naming its attempt. With ``$TEAM_LOG`` set, each request is logged as
``model <kind> <attempt> <turn>`` so a test can see none was repeated.
"""

from __future__ import annotations

import os
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request


def attempts(body: dict[str, Any], answer_in: int = 3) -> str:
    messages = body["messages"]
    attempt = messages[1]["content"].count("[Attempt ") + 1
    turn = sum(1 for m in messages if m["role"] == "assistant") + 1
    if body.get("continue_final_message"):
        kind = "summary"
        reply = f"Failure type: incomplete\nWhat happened: attempt {attempt} ran out of turns."
    elif is_closing_request(messages[-1]["content"]):
        box = f"\\boxed{{found in attempt {attempt}}}" if attempt >= answer_in else "no idea"
        kind, reply = "close", f"Closing.</think>\n\n{box}"
    elif attempt >= answer_in and turn >= 2:
        kind, reply = "work", "I have it.</think>\n\nThe answer is ready."
    else:
        call = render_call("lab", "lookup", {"topic": f"attempt{attempt}", "step": turn})
        kind, reply = "work", f"Looking.</think>\n\n{call}"
    log = os.environ.get("TEAM_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"model {kind} {attempt} {turn}\n")
    return reply
