"""Tool references in flow files: a built-in set or ``package.module:attribute``.

A reference is a name (``search``) or, for a set with settings, a one-key
mapping of the name to its options (``{local: {path: ./corpus}}``); each set
with settings declares them as a pydantic model (its module's ``Options``). An import
path may name a LangChain tool, a list of tools, or a plain function (turned
into a tool); custom tools need no change to mirograph.

An import path is imported as Python would, and else from ``search_dir``, the
folder of the flow file, so a tool module beside the flow needs no
``PYTHONPATH``. A module that cannot be imported (missing, a syntax error, an
exception at import) is a one-line ``ToolRefError`` naming the file and line.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.tools import BaseTool, tool
from pydantic import BaseModel, ValidationError

from mirograph.agents.tools.base import ToolContext, on_server
from mirograph.errors import ToolRefError
from mirograph.text import first_line

ToolSet = Callable[[ToolContext], list[BaseTool]]
#: What a flow file writes in ``tools``: a name, or ``{name: {option: value}}``.
ToolRefSpec = str | dict[str, dict[str, Any]]
#: Per set: why it cannot work in an environment, or None.
EnvCheck = Callable[[Mapping[str, str]], str | None]

#: Built-in sets by name: the module that makes them, imported on first use.
#: A module has ``make_tools(ctx)``; optionally ``Options`` (a pydantic model of
#: its settings, unknown keys rejected) and ``check_env(environ)``.
BUILTIN_SETS: dict[str, str] = {
    name: f"mirograph.agents.tools.{name}"
    for name in ("files", "local", "mcp", "python", "reasoning", "scrape", "search")
}


def builtin_module(name: str) -> ModuleType:
    return importlib.import_module(BUILTIN_SETS[name])


def _options_model(name: str) -> type[BaseModel] | None:
    return getattr(builtin_module(name), "Options", None)


@dataclass(frozen=True)
class ToolRef:
    name: str
    options: dict[str, Any]


def parse_ref(spec: ToolRefSpec) -> ToolRef:
    """``"name"`` or ``{"name": {options}}`` as a ``ToolRef``."""
    if isinstance(spec, str):
        return ToolRef(spec, {})
    if isinstance(spec, dict) and len(spec) == 1:
        [(name, options)] = spec.items()
        if isinstance(name, str) and isinstance(options, dict | None):
            return ToolRef(name, dict(options or {}))
    raise ToolRefError(
        f"a tool is a name or a one-key mapping like {{local: {{path: ./docs}}}}; got {spec!r}"
    )


def check_options(ref: ToolRef) -> BaseModel | None:
    """The validated options of a built-in set (None for a set without settings)."""
    model = _options_model(ref.name)
    if model is None:
        if ref.options:
            raise ToolRefError(f"tool set {ref.name!r} takes no options; write it as a name")
        return None
    try:
        return model.model_validate(ref.options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown option; {ref.name} takes: {', '.join(model.model_fields)}"
        elif first["type"] == "missing":
            message = "required option is missing"
        raise ToolRefError(f"{ref.name}.{where}: {message}") from None


def model_refs(options: BaseModel | None) -> dict[str, str]:
    """Option fields that name a flow model (``model``, ``*_model``) and their values."""
    if options is None:
        return {}
    return {
        key: value
        for key, value in options.model_dump().items()
        if (key == "model" or key.endswith("_model")) and isinstance(value, str)
    }


def check_ref(
    spec: ToolRefSpec, *, imports: bool = True, search_dir: str | Path | None = None
) -> BaseModel | None:
    """Raise ``ToolRefError`` unless ``spec`` resolves; its validated options if any.

    Used when a flow is validated; ``imports=False`` leaves import paths unimported
    (a stored run is read where its custom tools may not be installed).
    """
    ref = parse_ref(spec)
    if ref.name in BUILTIN_SETS:
        return check_options(ref)
    if ref.options:
        raise ToolRefError(f"{ref.name!r} is not a built-in set; only built-in sets take options")
    if imports:
        _imported(ref.name, search_dir)
    return None


def check_environment(spec: ToolRefSpec, env: Mapping[str, str] | None = None) -> None:
    """Raise ``ToolRefError`` when ``ref`` cannot work here (e.g. a missing API key).

    Separate from ``check_ref``: a stored run is still shown without the keys,
    but is started or resumed only with them.
    """
    name = parse_ref(spec).name
    check = getattr(builtin_module(name), "check_env", None) if name in BUILTIN_SETS else None
    problem = check(os.environ if env is None else env) if check else None
    if problem:
        raise ToolRefError(problem)


def environment_warnings(spec: ToolRefSpec) -> list[str]:
    """Caveats of a built-in set in this environment (e.g. a sandbox without isolation)."""
    ref = parse_ref(spec)
    if ref.name not in BUILTIN_SETS:
        return []
    warn = getattr(builtin_module(ref.name), "warnings", None)
    if warn is None:
        return []
    options = check_options(ref)
    return list(warn(options))


def resolve_tools(
    refs: Sequence[ToolRefSpec], ctx: ToolContext, *, search_dir: str | Path | None = None
) -> list[BaseTool]:
    """The tools of ``refs`` for one run, in order, with unique names; import paths
    not found on ``sys.path`` are looked for in ``search_dir`` (the flow's folder)."""
    tools: list[BaseTool] = []
    seen: dict[str, str] = {}
    for spec in refs:
        ref = parse_ref(spec)
        if ref.name in BUILTIN_SETS:
            make: ToolSet = builtin_module(ref.name).make_tools
            made = make(replace(ctx, options=check_options(ref)))
        else:
            made = _imported(ref.name, search_dir)
        for t in made:
            if t.name in seen:
                raise ToolRefError(
                    f"tool name {t.name!r} is defined twice (by {seen[t.name]!r} and {ref.name!r})"
                )
            seen[t.name] = ref.name
            tools.append(t)
    return tools


def _imported(ref: str, search_dir: str | Path | None = None) -> list[BaseTool]:
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        known = ", ".join(sorted(BUILTIN_SETS))
        raise ToolRefError(
            f"unknown tool {ref!r}: use a built-in set ({known}) or 'package.module:attribute'"
        )
    module = _import_module(module_name, ref, search_dir)
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise ToolRefError(f"module {module_name!r} has no attribute {attribute!r}") from None
    server = module_name.rsplit(".", 1)[-1]
    return [on_server(_as_tool(item, ref).model_copy(), server) for item in _items(target)]


def _import_module(module_name: str, ref: str, search_dir: str | Path | None) -> ModuleType:
    """``module_name`` imported from ``sys.path``, else from ``search_dir``; every failure
    of the module's own code is one line naming its file and line, never a traceback."""
    try:
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            top = module_name.partition(".")[0]
            if exc.name != top or not _holds_module(search_dir, top):
                raise
        return _import_from(module_name, Path(str(search_dir)))
    except ModuleNotFoundError as exc:
        where = f" or in the flow's folder {str(search_dir)!r}" if search_dir else ""
        raise ToolRefError(
            f"cannot import module {module_name!r} for tool {ref!r}: no module {exc.name!r} on"
            f" the Python path{where}; install it, put it beside the flow file or set PYTHONPATH"
        ) from None
    except SyntaxError as exc:
        raise ToolRefError(
            f"tool module {module_name!r} has a syntax error at {exc.filename}:{exc.lineno}:"
            f" {exc.msg}; fix the module"
        ) from None
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        # A module that calls sys.exit() on import would otherwise end the run silently.
        raise ToolRefError(
            f"importing tool module {module_name!r} failed at {_raised_at(exc)}:"
            f" {type(exc).__name__}: {first_line(exc, 300)}; fix the module"
        ) from None


def _holds_module(folder: str | Path | None, name: str) -> bool:
    if not folder:
        return False
    base = Path(folder)
    return (base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file()


def _import_from(module_name: str, folder: Path) -> ModuleType:
    """Import with ``folder`` first on ``sys.path`` for the import only (later imports
    of the same name get the same module from ``sys.modules``)."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        return importlib.import_module(module_name)
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def _raised_at(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "import"


def _items(target: Any) -> list[Any]:
    return list(target) if isinstance(target, (list, tuple)) else [target]


#: Each function's tool, made once per process: making one infers a pydantic model
#: from the signature and docstring (~8 ms), and every run of a flow made it again.
#: Callers take a copy (``model_copy``) before placing it on a server.
_MADE: weakref.WeakKeyDictionary[Any, BaseTool] = weakref.WeakKeyDictionary()


def _as_tool(item: Any, ref: str) -> BaseTool:
    if isinstance(item, BaseTool):
        return item
    if callable(item):
        try:
            return _MADE[item]
        except (KeyError, TypeError):  # not made yet, or not weakly referable
            pass
        try:
            made = tool(item)
        except ValueError as exc:  # e.g. a function without a docstring
            raise ToolRefError(f"{ref!r} cannot be made a tool: {exc}") from None
        with contextlib.suppress(TypeError):
            _MADE[item] = made
        return made
    raise ToolRefError(f"{ref!r} is a {type(item).__name__}, not a tool, list of tools or function")
