"""Tool references in flow files: a built-in set name or ``package.module:attribute``.

An import path may name a LangChain tool, a list of tools, or a plain
function (turned into a tool); custom tools need no change to mirograph.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.tools import BaseTool, tool

from mirograph.agents.tools import files, scrape, search
from mirograph.agents.tools.base import ToolContext, on_server

ToolSet = Callable[[ToolContext], list[BaseTool]]

BUILTIN_SETS: dict[str, ToolSet] = {
    "files": files.make_tools,
    "search": search.make_tools,
    "scrape": scrape.make_tools,
}

#: Per built-in set: why it cannot work in an environment, or None (checked at validation).
EnvCheck = Callable[[Mapping[str, str]], str | None]
ENV_CHECKS: dict[str, EnvCheck] = {
    "search": search.check_env,
}


class ToolRefError(ValueError):
    """A tool reference that names nothing usable."""


def check_ref(ref: str) -> None:
    """Raise ``ToolRefError`` unless ``ref`` resolves; used when a flow is validated."""
    if ref in BUILTIN_SETS:
        return
    _imported(ref)


def check_environment(ref: str, env: Mapping[str, str] | None = None) -> None:
    """Raise ``ToolRefError`` when ``ref`` cannot work here (e.g. a missing API key).

    Separate from ``check_ref``: a stored run is still shown without the keys,
    but is started or resumed only with them.
    """
    check = ENV_CHECKS.get(ref)
    problem = check(os.environ if env is None else env) if check else None
    if problem:
        raise ToolRefError(problem)


def resolve_tools(refs: Sequence[str], ctx: ToolContext) -> list[BaseTool]:
    """The tools of ``refs`` for one run, in order, with unique names."""
    tools: list[BaseTool] = []
    seen: dict[str, str] = {}
    for ref in refs:
        for t in BUILTIN_SETS[ref](ctx) if ref in BUILTIN_SETS else _imported(ref):
            if t.name in seen:
                raise ToolRefError(
                    f"tool name {t.name!r} is defined twice (by {seen[t.name]!r} and {ref!r})"
                )
            seen[t.name] = ref
            tools.append(t)
    return tools


def _imported(ref: str) -> list[BaseTool]:
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        known = ", ".join(sorted(BUILTIN_SETS))
        raise ToolRefError(
            f"unknown tool {ref!r}: use a built-in set ({known}) or 'package.module:attribute'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ToolRefError(f"cannot import module {module_name!r} for tool {ref!r}: {exc}") from exc
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise ToolRefError(f"module {module_name!r} has no attribute {attribute!r}") from None
    server = module_name.rsplit(".", 1)[-1]
    return [on_server(_as_tool(item, ref).model_copy(), server) for item in _items(target)]


def _items(target: Any) -> list[Any]:
    return list(target) if isinstance(target, (list, tuple)) else [target]


def _as_tool(item: Any, ref: str) -> BaseTool:
    if isinstance(item, BaseTool):
        return item
    if callable(item):
        try:
            return tool(item)
        except ValueError as exc:  # e.g. a function without a docstring
            raise ToolRefError(f"{ref!r} cannot be made a tool: {exc}") from None
    raise ToolRefError(f"{ref!r} is a {type(item).__name__}, not a tool, list of tools or function")
