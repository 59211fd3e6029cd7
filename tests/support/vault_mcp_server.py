"""A stdio MCP server that proves it received ``$TOKEN`` without revealing it.

``token_digest`` answers ``digest=<first 16 hex of sha256(TOKEN)>``, so a test
can check the secret reached the server while the secret itself never appears
in a tool result, a checkpoint or the run registry.
"""

from __future__ import annotations

import hashlib
import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("vault", log_level="WARNING")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@server.tool()
def token_digest() -> str:
    """A digest of the TOKEN this server was started with."""
    token = os.environ.get("TOKEN")
    return f"digest={digest(token)}" if token else "digest=unset"


if __name__ == "__main__":
    server.run("stdio")
