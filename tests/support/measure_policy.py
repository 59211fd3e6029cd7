"""A sim-model policy that measures the question it was sent: it boxes the length of
the run of ``x`` between ``BEGIN`` and ``END`` in the first user message, so a test
can check that a long question arrived whole."""

from __future__ import annotations

import re
from typing import Any


def measure(body: dict[str, Any]) -> str:
    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    found = re.search(r"BEGIN(x*)END", first)
    return f"Measured.</think>\n\n\\boxed{{{len(found.group(1)) if found else 'no question'}}}"
