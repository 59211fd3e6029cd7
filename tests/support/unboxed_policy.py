"""A sim-model policy whose model never boxes an answer and never calls a tool:
a run on it ends without an answer (status ``no_answer``)."""

from __future__ import annotations

from typing import Any


def unboxed(body: dict[str, Any]) -> str:
    return "I am not sure.</think>\n\nI could not work it out."
