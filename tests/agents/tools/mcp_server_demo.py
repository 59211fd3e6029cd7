"""A small stdio MCP server for the ``mcp`` tool set's tests.

Run as ``python mcp_server_demo.py``; its tools report on the process they
run in, so a test can see which server process answered.
"""

from __future__ import annotations

import asyncio
import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("demo", log_level="WARNING")

TABLE = {"alpha": "first letter", "beta": "second letter"}


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def lookup(key: str) -> str:
    """Look up a word in a small table."""
    if key not in TABLE:
        raise ValueError(f"unknown key {key!r}\n(the table has {len(TABLE)} keys)")
    return TABLE[key]


@server.tool()
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool()
def has_secret() -> str:
    """Whether TAVILY_API_KEY is set in the server's environment, and what it sees of DEMO_*."""
    demo = ",".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("DEMO_"))
    return f"TAVILY_API_KEY={'TAVILY_API_KEY' in os.environ} {demo}".strip()


@server.tool()
async def wait(seconds: float) -> str:
    """Answer after ``seconds``."""
    await asyncio.sleep(seconds)
    return "waited"


if __name__ == "__main__":
    server.run("stdio")
