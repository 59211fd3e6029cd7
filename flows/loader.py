"""Load and validate flow files before anything runs.

A flow is a YAML file or the name of one shipped in ``flows/``. Strings may
use ``${VAR}`` and ``${VAR:-default}`` from the environment; ``--set
a.b.c=value`` overrides any key. Every problem is reported on one line with
the file, the key path and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mirograph.graphs.config import IMPORT_TOOLS, FlowConfig

SHIPPED_DIR = Path(__file__).parent
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FlowError(ValueError):
    """A flow that cannot run; the message names the file, key path and fix."""


def shipped_flows() -> list[str]:
    return sorted(p.stem.replace("_", "-") for p in SHIPPED_DIR.glob("*.yaml"))


def find_flow(ref: str | None) -> Path:
    """The file of a flow reference: a path, or a shipped name like ``single-agent``."""
    ref = ref or "single-agent"
    path = Path(ref).expanduser()
    if path.suffix in {".yaml", ".yml"} or os.sep in ref:
        if not path.is_file():
            raise FlowError(f"flow file {ref!r} does not exist")
        return path
    shipped = SHIPPED_DIR / f"{ref.replace('-', '_')}.yaml"
    if shipped.is_file():
        return shipped
    raise FlowError(
        f"unknown flow {ref!r}; use a path to a .yaml file or one of: {', '.join(shipped_flows())}"
    )


def load_flow(ref: str | None = None, overrides: Sequence[str] = ()) -> FlowConfig:
    path = find_flow(ref)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise FlowError(f"{path}:{where}: {problem}; fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise FlowError(f"{path}: expected a mapping with name, models, agents, entry")
    try:
        expanded = expand_env(raw)
    except FlowError as exc:
        raise FlowError(f"{path}: {exc}") from None
    flow = validate_flow(apply_overrides(expanded, overrides, source=path), source=path)
    ready_to_run(flow, source=path)
    return flow


def ready_to_run(flow: FlowConfig, *, source: Path | str = "<flow>") -> None:
    """Reject a valid flow whose tools cannot work in this environment (a missing key)."""
    try:
        flow.check_environment()
    except ValueError as exc:
        raise FlowError(f"{source}: {exc}") from None


def validate_flow(
    data: dict[str, Any], *, source: Path | str = "<flow>", import_tools: bool = True
) -> FlowConfig:
    """The flow, checked; ``import_tools=False`` to read a stored run, whose custom
    tools need not be importable here."""
    try:
        return FlowConfig.model_validate(data, context={IMPORT_TOOLS: import_tools})
    except ValidationError as exc:
        raise FlowError(f"{source}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """Pydantic errors as ``key.path: what was expected, got what`` on one line."""
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif "input" in error and error["type"] not in {"value_error"}:
            message = f"{message}, got {error['input']!r}"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def expand_env(value: Any) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string of a parsed flow.

    A default may itself hold ``${OTHER:-...}``; it is expanded only when used.
    Values read from the environment are taken as they are, never expanded again.
    """
    if isinstance(value, str):
        return _expand(value)
    if isinstance(value, dict):
        return {key: expand_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item) for item in value]
    return value


def _expand(text: str) -> str:
    out: list[str] = []
    i = 0
    while (start := text.find("${", i)) >= 0:
        out.append(text[i:start])
        name = _NAME.match(text, start + 2)
        if name is None:  # not a variable: keep the characters
            out.append("${")
            i = start + 2
            continue
        var, i = name.group(), name.end()
        default = None
        if text.startswith(":-", i):
            end = _closing_brace(text, i + 2)
            default, i = text[i + 2 : end], end
        if not text.startswith("}", i):
            raise FlowError(f"unclosed ${{{var}...}} in {text!r}; add the closing brace")
        i += 1
        value = os.environ.get(var)
        if value:
            out.append(value)
        elif default is not None:
            out.append(_expand(default))
        else:
            raise FlowError(
                f"environment variable {var} is not set; set it or write ${{{var}:-default}}"
            )
    out.append(text[i:])
    return "".join(out)


def _closing_brace(text: str, i: int) -> int:
    """Index of the ``}`` that closes a default starting at ``i`` (nested ``${}`` skipped)."""
    depth = 0
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return i


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], *, source: Path | str = "<flow>"
) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides; values are YAML scalars (numbers, booleans...)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise FlowError(f"--set {item!r}: expected KEY=VALUE, e.g. agents.main.max_turns=50")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FlowError(f"{source}: --set {key}: {part!r} is not a mapping")
            node = child
        node[leaf] = yaml.safe_load(text) if text.strip() else ""
    return data
