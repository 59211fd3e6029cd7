"""A FastMCP server whose tools are typed Python functions with full docstrings.

The tool-list tests compare how FastMCP lists these functions with how our
system prompt lists the same functions as LangChain tools, and with how it
lists them when they come from this server (run as ``python listed_mcp_server.py``).
"""

from __future__ import annotations

from typing import Literal

from mcp.server.fastmcp import FastMCP

server = FastMCP("listed", log_level="WARNING")


def google_search(
    q: str,
    gl: str = "us",
    num: int = 10,
    tbs: str | None = None,
    sites: list[str] | None = None,
    safe: bool = True,
    mode: Literal["fast", "deep"] = "fast",
) -> str:
    """Search the web and return the organic results as JSON.

    It reads one page of results.

    Args:
        q: The search query.
        gl: Two-letter country code, e.g. "us".
        num: How many results to return.
        tbs: Time filter, e.g. "qdr:w" for the past week.
        sites: Only results from these sites.
        safe: Whether to filter explicit results.
        mode: How hard to look.

    Returns:
        The results as a JSON string.
    """
    return f"{q} {gl} {num} {tbs} {sites} {safe} {mode}"


async def scrape_and_extract_info(url: str, info_to_extract: str) -> str:
    """Fetch a page and extract the requested information.

    Args:
        url: The http(s) URL of the page.
        info_to_extract: What to look for on the page.
    """
    return f"{url}: {info_to_extract}"


def ping() -> str:
    """Answer pong."""
    return "pong"


FUNCTIONS = (google_search, scrape_and_extract_info, ping)
for function in FUNCTIONS:
    server.tool()(function)


if __name__ == "__main__":
    server.run("stdio")
