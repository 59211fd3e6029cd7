"""A sim-model policy that plays an LLM judge (``tests/flows/bench/test_judge_llm.py``).

It grades by reading the judge's own prompt: CORRECT when the response equals the
reference answer (case aside), INCORRECT otherwise. Markers in the response script
the failures, since the server keeps no state between requests:

- ``UNPARSEABLE``: every reply lacks a verdict line;
- ``LATE-VERDICT``: the first reply lacks one, the reply to the reminder has one;
- ``SERVER-ERROR``: every request gets an HTTP 500 whose message holds ``secret``;
- ``SLOW``: every request waits 5 s for its HTTP 500 (a call to cancel mid-way).

``log=PATH`` appends each request body to PATH as a JSON line, so a test can count the
requests and read the prompts.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mirograph.agents.sim.policies import content_text
from mirograph.agents.sim.scripting import Fault

_SECTION = r"\[{name}\]\n(.*?)\n\n\["


def grade(body: dict[str, Any], log: str = "", secret: str = "") -> str | Fault:
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(body) + "\n")
    messages = body["messages"]
    prompt = content_text(messages[0]["content"])
    response = _section(prompt, "Response")
    truth = _section(prompt, "Reference answer")
    retried = any(m["role"] == "assistant" for m in messages)
    if "SERVER-ERROR" in response:
        return Fault(status=500, message=f"upstream failed (key {secret})")
    if "SLOW" in response:
        return Fault(status=500, message="too late", delay_ms=5000)
    if "UNPARSEABLE" in response or ("LATE-VERDICT" in response and not retried):
        return "<think>Hard to say.</think>\nI would rather not commit to a grade."
    agree = response.replace("LATE-VERDICT", "").strip().lower() == truth.lower()
    verdict, other = ("CORRECT", "INCORRECT") if agree else ("INCORRECT", "CORRECT")
    return (  # the thinking names the other verdict: a judge must read past it
        f"<think>The response says {response!r}. VERDICT: {other}? Let me check.</think>\n"
        f"The response {'matches' if agree else 'differs from'} the reference.\n\n"
        f"**VERDICT: {verdict}**"
    )


def _section(prompt: str, name: str) -> str:
    found = re.search(_SECTION.format(name=re.escape(name)), prompt, re.DOTALL)
    return found.group(1).strip() if found else ""
