"""Load and validate flow files before anything runs.

A flow is a YAML file or the name of one shipped in ``flows/``. Strings may
use ``${VAR}`` and ``${VAR:-default}`` from the environment; ``--set
a.b.c=value`` overrides any key. Every problem is reported on one line with
the file, the key path and what was expected.

``${VAR}`` is resolved each time a flow is validated, in the process that runs
it: the validated flow holds the values, but its ``model_dump`` (what a run
stores) gives the references back, so a secret passed as ``${MY_TOKEN}`` never
reaches the run store and a resumed run reads it again from its environment.

A flow file is bounded: at most ``MAX_FLOW_BYTES``, ``MAX_DEPTH`` levels of
nesting and ``MAX_NODES`` values once aliases are expanded (a YAML "billion
laughs" is refused before it is built), and no alias may contain itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mirograph.errors import FlowError
from mirograph.graphs.config import FLOW_DIR, IMPORT_TOOLS, FlowConfig, override_keys
from mirograph.text import first_line

SHIPPED_DIR = Path(__file__).parent
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Largest flow file read; real flows are a few KB.
MAX_FLOW_BYTES = 1 << 20
#: Deepest nesting of mappings and lists in a flow file (or a ``--set`` value).
MAX_DEPTH = 32
#: Most values a flow file may expand to, each alias counted at every use.
MAX_NODES = 50_000
#: Most characters of text a flow file may expand to, each alias counted at every use
#: (one long string aliased many times is as much a bomb as many small values).
MAX_EXPANDED_CHARS = 4 << 20

#: A key path in a flow (mapping keys and list indexes) and what it held before expansion.
KeyPath = tuple[str | int, ...]


#: Other names of shipped flows. A run of an alias shows and stores the alias as its
#: flow's name, as ``single-agent`` (now ``mirothinker-v1.0``) always did.
FLOW_ALIASES = {"single-agent": "mirothinker-v1.0", "mirothinker-1.7": "mirothinker-v1.7"}
#: The flow of ``mirograph run`` without ``--flow``.
DEFAULT_FLOW = "single-agent"


def shipped_flows() -> list[str]:
    """Every name ``--flow`` takes for a shipped flow, aliases included."""
    return sorted([*_shipped_files(), *FLOW_ALIASES])


def _shipped_files() -> dict[str, Path]:
    return {p.stem.replace("_", "-"): p for p in SHIPPED_DIR.glob("*.yaml")}


def find_flow(ref: str | None) -> Path:
    """The file of a flow reference: a path, or a shipped name like ``mirothinker-v1.5``."""
    ref = ref or DEFAULT_FLOW
    path = Path(ref).expanduser()
    if path.suffix in {".yaml", ".yml"} or os.sep in ref:
        if not path.is_file():
            raise FlowError(f"flow file {ref!r} does not exist")
        return path
    name = ref.replace("_", "-")
    shipped = _shipped_files().get(FLOW_ALIASES.get(name, name))
    if shipped is not None:
        return shipped
    raise FlowError(
        f"unknown flow {ref!r}; use a path to a .yaml file or one of: {', '.join(shipped_flows())}"
    )


def load_flow(
    ref: str | None = None, overrides: Sequence[str] = (), *, check_env: bool = True
) -> FlowConfig:
    """The validated flow of ``ref`` with ``overrides`` applied.

    ``check_env=False`` skips the check that its tools can work here (API keys):
    describing a graph needs none; starting a run does (``ready_to_run``).
    """
    path = find_flow(ref)
    raw = read_flow_file(path)
    alias = (ref or DEFAULT_FLOW).replace("_", "-")
    if alias in FLOW_ALIASES:  # before the overrides: ``--set name=...`` still wins
        raw["name"] = alias
    if FLOW_DIR in raw:
        raise FlowError(f"{path}: {FLOW_DIR}: set by the loader (the file's folder); remove it")
    raw[FLOW_DIR] = str(path.resolve().parent)
    flow = validate_flow(apply_overrides(raw, overrides, source=path), source=path)
    if check_env:
        ready_to_run(flow, source=path)
    return flow


def read_flow_file(path: Path) -> dict[str, Any]:
    """The parsed mapping of a flow file: bounded, UTF-8 text, YAML, one line per problem."""
    try:
        size = path.stat().st_size
        if size > MAX_FLOW_BYTES:
            raise FlowError(f"{path}: {size} bytes; a flow file is at most {MAX_FLOW_BYTES} bytes")
        data = path.read_bytes()[: MAX_FLOW_BYTES + 1]
    except OSError as exc:
        raise FlowError(f"{path}: cannot read it ({exc.strerror or exc}); check the path") from None
    text = _text(data, path)
    raw = parse_yaml(text, where=str(path))
    if not isinstance(raw, dict):
        raise FlowError(f"{path}: expected a mapping with name, models, agents, entry")
    return raw


def _text(data: bytes, path: Path) -> str:
    nul = data.find(b"\0")
    if nul >= 0:
        raise FlowError(f"{path}: holds a NUL byte at offset {nul}; a flow file is YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlowError(
            f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start});"
            " a flow file is YAML text in UTF-8"
        ) from None


class _LimitError(yaml.MarkedYAMLError):
    """A document past one of the loader's bounds."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting, self-containing aliases and documents
    that expand past ``MAX_NODES`` values, before any Python object is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            raise _LimitError(
                problem=f"nested deeper than {MAX_DEPTH} levels; flatten it",
                problem_mark=self.peek_event().start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A key given twice is refused: YAML would keep the last one silently."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise _LimitError(
                    problem=f"key {key!r} is given twice; keep one",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph with a cycle, or one that expands past ``MAX_NODES`` values or
    ``MAX_EXPANDED_CHARS`` characters of text.

    Aliases make the composed document a DAG whose expansion may be exponential in
    its size; sizes are computed once per node (iteratively: no recursion limit).
    """
    sizes: dict[int, tuple[int, int]] = {}  # node -> (values, characters) once expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            children = [sizes[id(c)] for c in _children(node)]
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            values = min(MAX_NODES + 1, 1 + sum(v for v, _ in children))
            chars = min(MAX_EXPANDED_CHARS + 1, own + sum(c for _, c in children))
            sizes[key] = (values, chars)
            if values > MAX_NODES or chars > MAX_EXPANDED_CHARS:
                what = (
                    f"more than {MAX_NODES} values"
                    if values > MAX_NODES
                    else f"more than {MAX_EXPANDED_CHARS} characters"
                )
                raise _LimitError(
                    problem=f"expands to {what} (aliases counted at each use);"
                    " write it out without nested aliases",
                    problem_mark=node.start_mark,
                )
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise _LimitError(
                    problem="an alias refers to a node that contains it (a recursive anchor);"
                    " remove the alias",
                    problem_mark=child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))


def parse_yaml(text: str, *, where: str) -> Any:
    """``text`` parsed by the bounded safe loader; a ``FlowError`` naming ``where`` and the line."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _LimitError as exc:
        raise FlowError(f"{where}: {_line(exc)}{exc.problem}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid YAML"
        raise FlowError(f"{where}: {_line(exc)}{problem}; fix the YAML syntax") from None
    except (ValueError, OverflowError) as exc:  # a value YAML cannot build: 2001-13-45, 1e5000
        first = first_line(exc, 200)
        raise FlowError(f"{where}: a value cannot be read ({first}); quote it or fix it") from None
    finally:
        loader.dispose()


def _line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}: " if mark is not None else ""


def ready_to_run(flow: FlowConfig, *, source: Path | str = "<flow>") -> None:
    """Reject a valid flow whose tools cannot work in this environment (a missing key)."""
    try:
        flow.check_environment()
    except ValueError as exc:
        raise FlowError(f"{source}: {exc}") from None


def validate_flow(
    data: dict[str, Any], *, source: Path | str = "<flow>", import_tools: bool = True
) -> FlowConfig:
    """The flow, checked, with ``${VAR}`` resolved from this process's environment.

    ``import_tools=False`` to read a stored run: its custom tools need not be
    importable here, and a variable that is not set is left as written.
    """
    references: dict[KeyPath, tuple[str, str]] = {}
    try:
        expanded = _expand_tree(data, (), references, keep_missing=not import_tools)
    except FlowError as exc:
        raise FlowError(f"{source}: {exc}") from None
    try:
        flow = FlowConfig.model_validate(expanded, context={IMPORT_TOOLS: import_tools})
    except ValidationError as exc:
        raise FlowError(f"{source}: {describe(exc)}") from None
    flow.keep_references(references)
    return flow


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
            message = f"{message}, got {_short(error['input'])}"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def expand_env(value: Any) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string of a parsed flow.

    A default may itself hold ``${OTHER:-...}``; it is expanded only when used.
    Values read from the environment are taken as they are, never expanded again.
    """
    return _expand_tree(value, (), {})


def _expand_tree(
    value: Any,
    path: KeyPath,
    references: dict[KeyPath, tuple[str, str]],
    *,
    keep_missing: bool = False,
) -> Any:
    """``expand_env``, recording in ``references`` each string that used a variable:
    its key path, as written, and as expanded. (Recursive: the loader bounds the depth.)"""
    if isinstance(value, str):
        expanded = _expand(value, keep_missing=keep_missing)
        if "${" in value:
            references[path] = (value, expanded)
        return expanded
    if isinstance(value, dict):
        return {
            key: _expand_tree(item, (*path, key), references, keep_missing=keep_missing)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _expand_tree(item, (*path, i), references, keep_missing=keep_missing)
            for i, item in enumerate(value)
        ]
    return value


def _expand(text: str, *, keep_missing: bool = False) -> str:
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
            out.append(_expand(default, keep_missing=keep_missing))
        elif keep_missing:
            out.append(text[start:i])
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
    """Apply ``key.path=value`` overrides; values are YAML (numbers, booleans, lists...),
    read by the same bounded loader as a flow file."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise FlowError(f"--set {item!r}: expected KEY=VALUE, e.g. agents.main.max_turns=50")
        parts = key.strip().split(".")
        _check_key_path(parts, source)
        *parents, leaf = parts
        node = data
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FlowError(f"{source}: --set {key}: {part!r} is not a mapping")
            node = child
        node[leaf] = parse_yaml(text, where=f"--set {key}") if text.strip() else ""
    return data


def _check_key_path(parts: list[str], source: Path | str) -> None:
    """Refuse a ``--set`` key path that names no key of the flow schema."""
    dotted = ".".join(parts)
    if any(not p.strip() for p in parts):
        raise FlowError(f"{source}: --set {dotted}: empty key in the path; write a.b.c=VALUE")
    known = override_keys(parts)
    if known is not None and parts[-1] not in known:
        raise FlowError(
            f"{source}: --set {dotted}: unknown key {parts[-1]!r}; known here: {', '.join(known)}"
        )
