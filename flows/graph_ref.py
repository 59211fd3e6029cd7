"""Custom graphs by reference: ``path/to/file.py:build_graph`` or ``package.module:build_graph``.

The reference is stored with the run (file paths made absolute), so
``mirograph resume`` rebuilds the same graph in a new process.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirograph.errors import FlowError
from mirograph.text import describe

GraphBuilder = Callable[[Any], Any]


def is_graph_ref(ref: str | None) -> bool:
    """Whether ``--flow`` names a Python graph builder rather than a flow file or name."""
    if not ref or ":" not in ref:
        return False
    target, _, attribute = ref.rpartition(":")
    return bool(target and attribute) and not ref.endswith((".yaml", ".yml"))


def canonical(ref: str) -> str:
    """The reference with a file path made absolute, valid from any directory."""
    target, _, attribute = ref.rpartition(":")
    if target.endswith(".py"):
        return f"{Path(target).expanduser().resolve()}:{attribute}"
    return ref


def load_builder(ref: str) -> GraphBuilder:
    """Import the builder ``ref`` names; a one-line ``FlowError`` says what is wrong."""
    target, _, attribute = ref.rpartition(":")
    if target.endswith(".py"):
        module = _import_file(Path(target).expanduser(), ref)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise FlowError(
                f"graph {ref!r}: cannot import {target!r} ({exc}); use path/to/file.py:function"
                " or an importable package.module:function"
            ) from None
    builder = getattr(module, attribute, None)
    if not callable(builder):
        raise FlowError(
            f"graph {ref!r}: {target} has no function {attribute!r};"
            " define build_graph(ctx) returning a StateGraph"
        )
    return _checked(ref, attribute, builder)


def _checked(ref: str, attribute: str, builder: GraphBuilder) -> GraphBuilder:
    """``builder``, its failures made one-line ``FlowError``: it raised (where, and
    what), returned something that is not a graph to compile (e.g. a compiled one),
    or a graph that compiling would refuse."""

    @functools.wraps(builder)
    def build(ctx: Any) -> Any:
        try:
            graph = builder(ctx)
        except Exception as exc:
            raise FlowError(
                f"graph {ref!r}: {attribute}(ctx) raised {describe(exc)}"
                f"{_where(exc)}; fix the function"
            ) from None
        if not callable(getattr(graph, "compile", None)):
            raise FlowError(
                f"graph {ref!r}: {attribute}(ctx) returned {type(graph).__name__}, not a graph;"
                " return the StateGraph itself (mirograph compiles it with the run's store)"
            )
        try:  # what compiling would refuse: no entry point, an edge to no node, ...
            validate = getattr(graph, "validate", None)
            if callable(validate):
                validate()
        except Exception as exc:
            raise FlowError(
                f"graph {ref!r}: {attribute}(ctx) returned a graph that cannot run:"
                f" {describe(exc)}; fix the function"
            ) from None
        return graph

    return build


def _where(exc: BaseException) -> str:
    """`` (at file.py:LINE)``: the innermost frame of the traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"


def _import_file(path: Path, ref: str) -> Any:
    if not path.is_file():
        raise FlowError(f"graph {ref!r}: file {str(path)!r} does not exist")
    name = f"mirograph_graph_{path.stem}_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FlowError(f"graph {ref!r}: {str(path)!r} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise FlowError(f"graph {ref!r}: importing {path.name} failed: {describe(exc)}") from None
    return module
