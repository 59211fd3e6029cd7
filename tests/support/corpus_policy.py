"""A sim-model policy that researches the bundled demo corpus with the ``local`` tools.

Turn 1 searches, turn 2 reads the top document from the offset the search
gave, turn 3 answers with the number of houses the text says were destroyed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

SERVER = "tool-local-corpus"


def houses(body: dict[str, Any]) -> str:
    messages = body["messages"]
    done = sum(m["role"] == "assistant" for m in messages)
    results = [m["content"] for m in messages[2:] if m["role"] == "user"]
    if done == 0:
        call = render_call(SERVER, "local_search", {"query": "houses destroyed in the flood"})
        return f"Search first.</think>\n\nSearching the corpus.\n\n{call}"
    if done == 1:
        top = json.loads(results[-1])["organic"][0]
        call = render_call(SERVER, "read_document", {"doc_id": top["doc_id"]})
        return f"Read {top['doc_id']}.</think>\n\nReading it.\n\n{call}"
    text = "\n".join(results)
    found = re.search(r"(\d+) were destroyed", text)
    answer = found.group(1) if found else "unknown"
    if is_closing_request(messages[-1]["content"]) or done >= 2:
        return f"The document says it.</think>\n\nFinal answer: \\boxed{{{answer}}}"
    return "Thinking.</think>\n\nStill reading."
