"""A sim-model policy whose run writes a file in its workspace, is held in its second
turn's tool call (``support.pause_tools:lookup``, topic ``main`` step 2), then reads
the file back and boxes what it read: ``\\boxed{PLOVER}`` only if the file was there.
"""

from __future__ import annotations

import re
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

NOTE = "notes/found.txt"
WORD = "PLOVER"
_SERVER = re.compile(r"## Server name: (\S+)")
_TOOL = re.compile(r"### Tool name: (\S+)")


def servers(system: str) -> dict[str, str]:
    """Tool name -> its server, as the system prompt lists them."""
    found, server = {}, ""
    for line in system.splitlines():
        if match := _SERVER.match(line):
            server = match.group(1)
        elif match := _TOOL.match(line):
            found[match.group(1)] = server
    return found


def note(body: dict[str, Any]) -> str:
    messages = body["messages"]
    done = sum(1 for m in messages if m["role"] == "assistant")
    where = servers(messages[0]["content"])
    if is_closing_request(messages[-1]["content"]) or done >= 3:
        results = [str(m["content"]) for m in messages[2:] if m["role"] != "assistant"]
        seen = WORD if any(f"code word {WORD}" in text for text in results) else "missing"
        return f"I read the note back.</think>\n\nThe note says \\boxed{{{seen}}}"
    if done == 0:
        args = {"path": NOTE, "content": f"code word {WORD}\n"}
        call = render_call(where["write_file"], "write_file", args)
    elif done == 1:
        call = render_call(where["lookup"], "lookup", {"topic": "main", "step": 2})
    else:
        call = render_call(where["read_file"], "read_file", {"path": NOTE})
    return f"Step {done + 1}.</think>\n\nWorking.\n\n{call}"
