"""A sim-model policy for the flow-secrets test: ask the vault, block, ask again, answer.

Turn 1 calls ``vault.token_digest``, turn 2 ``beside_tools.block`` (a tool module
beside the flow file, which blocks in the first process so it can be killed),
turn 3 ``vault.token_digest`` again; the closing request is answered with every
digest seen in the history, boxed.
"""

from __future__ import annotations

import re
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request
from mirograph.agents.sim.policies import content_text

CALLS = [("vault", "token_digest"), ("beside_tools", "block"), ("vault", "token_digest")]


def vault(body: dict[str, Any]) -> str:
    messages = body["messages"]
    if is_closing_request(content_text(messages[-1]["content"])):
        seen = [
            d
            for m in messages
            if m["role"] == "user"
            for d in re.findall(r"digest=(\w+)", content_text(m["content"]))
        ]
        return f"Done.</think>\n\nDigests seen. \\boxed{{{' '.join(seen)}}}"
    n = sum(1 for m in messages if m["role"] == "assistant")
    server, tool = CALLS[min(n, len(CALLS) - 1)]
    return f"Step {n + 1}.</think>\n\nCalling {tool}.\n\n{render_call(server, tool, {})}"
