"""Which tool results roll their turn back (the reference agent's rule).

The MiroThinker weights rarely saw error results in training: a turn whose
tool result is an error, or a web search that found nothing, is resampled as
if it never happened (``AgentLoop``; at most ``max_rollbacks`` in a row, the
same streak as reply rollbacks).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from langchain_core.messages import ToolMessage

#: How an MCP server's own results start for a raised exception, bad arguments or
#: a missing tool; mirograph's own failures are ToolMessages with status "error".
ERROR_PREFIXES = ("Error executing tool", "Unknown tool:")
#: The web search whose result with no organic results rolls back.
SEARCH_TOOL = "google_search"


def result_rollback_reason(
    results: Sequence[ToolMessage], exempt: Collection[str] = ()
) -> str | None:
    """Why these results roll their turn back (None: they are shown).

    ``exempt``: tools whose results are never judged (sub-agents' reports: a
    sub-agent judged its own tool results)."""
    for result in results:
        if result.name in exempt:
            continue
        text = result.text
        if result.status == "error" or text.startswith(ERROR_PREFIXES):
            return f"tool error: {result.name}"
        if result.name == SEARCH_TOOL and _no_organic_results(text):
            return "search without results"
    return None


def _no_organic_results(text: str) -> bool:
    """A search result (JSON) with no organic results; text that is not JSON is kept."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and not parsed.get("organic")
