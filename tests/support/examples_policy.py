"""Sim-model policies that drive the custom graphs in ``examples/``.

Stateless like every policy: the agent is read from its system prompt, its
turn from the assistant messages so far. With ``$EXAMPLES_BLOCK_FLAG`` naming
an existing file, the request named by ``block`` (``agent:turn``) deletes the
file, announces itself on the FIFO ``$EXAMPLES_FIFO`` and never returns, so a
test can kill the runner mid-way; a resumed run is then answered normally.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request


async def verify(body: dict[str, Any], block: str = "") -> str:
    """examples/verify_loop.py: the first draft (41) is rejected, the second (42) accepted."""
    messages = body["messages"]
    system, task = messages[0]["content"], messages[1]["content"]
    done = sum(m["role"] == "assistant" for m in messages)
    closing = is_closing_request(messages[-1]["content"])
    if "You are the planner" in system:
        return _boxed("1. Count the moons. 2. Check the count")
    if "You are an independent verifier" in system:
        return _boxed("ACCEPT" if "Draft answer: 42" in task else "REJECT: recount the moons")
    second = "Verifier feedback" in task
    await _maybe_block(f"researcher{2 if second else 1}:{done}", block)
    if closing:
        return _boxed("42" if second else "41")
    if done == 0:
        args = {"path": f"notes/round-{2 if second else 1}.md", "content": "moons: counted\n"}
        return _call("tool-files", "write_file", args)
    if done == 1:
        return _call("tool-files", "read_file", {"path": f"notes/round-{2 if second else 1}.md"})
    return "The notes are complete.</think>\n\nI have the count."


async def native(body: dict[str, Any], block: str = "") -> str:
    """examples/native_tools.py: the analyst looks up two cities, the writer answers."""
    messages = body["messages"]
    done = sum(m["role"] == "assistant" for m in messages)
    closing = is_closing_request(str(messages[-1].get("content")))
    if "You are a sub-agent" in messages[0]["content"]:  # the native analyst
        await _maybe_block(f"analyst:{done}", block)
        if closing:
            return "Graz was founded in 1128, Turku in 1229."
        if done < 2 and body.get("tools"):
            return _call("tools", "city_facts", {"city": ["Graz", "Turku"][done]})
        return "Both cities are looked up."
    return _boxed("Graz")


async def _maybe_block(where: str, block: str) -> None:
    if where == block and await asyncio.to_thread(_claim_block, where):
        await asyncio.Event().wait()


def _claim_block(where: str) -> bool:
    """Delete the block-once flag and announce the block; False when already used."""
    flag = os.environ.get("EXAMPLES_BLOCK_FLAG")
    if not flag or not os.path.exists(flag):
        return False
    os.remove(flag)
    with open(os.environ["EXAMPLES_FIFO"], "w", encoding="utf-8") as fifo:
        fifo.write(f"blocked at {where}\n")
    return True


def _call(server: str, tool: str, args: dict[str, Any]) -> str:
    return f"I will use {tool}.</think>\n\nUsing {tool}.\n\n{render_call(server, tool, args)}"


def _boxed(value: str) -> str:
    return f"Done.</think>\n\nFinal answer: \\boxed{{{value}}}"
