"""Checkpoint serialisation: LangGraph's own, with a faster path for chat messages.

Resuming a 600-turn run rebuilds 1,200 messages. The stock decoder builds
each one through pydantic validation, which is about half of the state load
time. These messages were validated when they were made, and were stored
from ``model_dump()``, so they are rebuilt with ``model_construct``. Every
other type goes through LangGraph's decoder unchanged.
"""

from __future__ import annotations

from typing import Any

import ormsgpack
from langchain_core import messages as lc_messages
from langgraph.checkpoint.serde.jsonplus import (
    EXT_DELTA_SNAPSHOT,
    EXT_PYDANTIC_V2,
    JsonPlusSerializer,
)
from langgraph.checkpoint.serde.types import _DeltaSnapshot

_MESSAGE_CLASSES: dict[str, type[lc_messages.BaseMessage]] = {
    cls.__name__: cls
    for cls in (
        lc_messages.AIMessage,
        lc_messages.HumanMessage,
        lc_messages.SystemMessage,
        lc_messages.ToolMessage,
    )
}


def message_serializer() -> JsonPlusSerializer:
    stock = JsonPlusSerializer()
    fallback = getattr(stock, "_unpack_ext_hook", None)
    if fallback is None:  # a LangGraph without the hook: stay on the stock path
        return stock

    def ext_hook(code: int, data: bytes) -> Any:
        if code == EXT_DELTA_SNAPSHOT:  # a snapshot's messages: decode them here too
            return _DeltaSnapshot(
                ormsgpack.unpackb(data, ext_hook=ext_hook, option=ormsgpack.OPT_NON_STR_KEYS)
            )
        if code == EXT_PYDANTIC_V2:
            module, name, fields, *_ = ormsgpack.unpackb(
                data, ext_hook=ext_hook, option=ormsgpack.OPT_NON_STR_KEYS
            )
            cls = _MESSAGE_CLASSES.get(name)
            if cls is not None and module == cls.__module__:
                return cls.model_construct(**fields)
        return fallback(code, data)

    return JsonPlusSerializer(__unpack_ext_hook__=ext_hook)
