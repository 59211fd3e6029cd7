"""Strict value types for flow settings (model, agent and tool options).

Pydantic's lax mode takes ``max_turns: true`` as 1 and ``streaming: 1`` as True,
so a slip in a flow file runs instead of being refused. These types take only
real numbers and booleans, plus their text form, because ``${VAR}`` expands to
text (``max_turns: ${TURNS:-50}``). Bounds are given per field with ``Field``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _number_text(value: Any, kind: type) -> Any:
    """A number written as text (from ``${VAR}``) as that number; anything else unchanged."""
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            return value
    return value


def _int_text(value: Any) -> Any:
    return _number_text(value, int)


def _float_text(value: Any) -> Any:
    return _number_text(value, float)


def _bool_text(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return value


#: An integer: not a boolean, not a float.
Int = Annotated[int, BeforeValidator(_int_text), Field(strict=True)]
#: A finite number: an int or a float, not a boolean.
Float = Annotated[float, BeforeValidator(_float_text), Field(strict=True, allow_inf_nan=False)]
#: ``true`` or ``false``: not 0 or 1, not "yes".
Bool = Annotated[bool, BeforeValidator(_bool_text), Field(strict=True)]

#: Upper bounds shared by several settings.
DAY_S = 86_400.0
#: 1 TiB in MiB: no sandbox or file limit is larger.
TIB_MB = 1 << 20
