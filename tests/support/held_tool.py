"""A tool that holds its call until the test lets it go, and says what it could see.

``wait_here`` announces itself on the FIFO ``$HELD_FIFO``, waits for a line on the
FIFO ``$HELD_GO``, then returns whether ``MIROGRAPH_UI_TOKEN`` was in its
environment (a run started from the web view must not get the view's token).
``reply`` (a sim-model policy) calls it once, then answers ``\\boxed{done}``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request


def wait_here(note: str) -> str:
    """Wait for the go-ahead, then report what this process could see."""
    with open(os.environ["HELD_FIFO"], "w", encoding="utf-8") as fifo:
        fifo.write(f"holding {note}\n")
    with open(os.environ["HELD_GO"], encoding="utf-8") as go:
        go.read()
    return json.dumps({"token_seen": "MIROGRAPH_UI_TOKEN" in os.environ})


def reply(body: dict[str, Any]) -> str:
    messages = body["messages"]
    if is_closing_request(messages[-1]["content"]) or any(
        m["role"] == "assistant" for m in messages
    ):
        return "The tool answered.</think>\n\n\\boxed{done}"
    call = render_call("held_tool", "wait_here", {"note": "first"})
    return f"I will wait.</think>\n\nWaiting.\n\n{call}"
