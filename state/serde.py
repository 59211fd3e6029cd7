"""Checkpoint serialisation: LangGraph's own, with a faster path for chat messages.

Resuming a 600-turn run rebuilds 1,200 messages. The stock decoder builds
each one through pydantic validation, which is about half of the state load
time. These messages were validated when they were made, and were stored
from ``model_dump()``, so they are rebuilt with ``model_construct``. Every
other type goes through LangGraph's decoder unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    """LangGraph's serializer with the fast path for chat messages."""
    return MessageSerializer()


class MessageSerializer(JsonPlusSerializer):
    """``JsonPlusSerializer`` whose msgpack decoder rebuilds chat messages directly.

    The fast path wraps the stock decoder instead of replacing it, and is put
    back on the copy ``with_msgpack_allowlist`` returns: LangGraph passes a
    graph's own state types (a user's dataclass) that way, and under
    ``LANGGRAPH_STRICT_MSGPACK`` only the copy's decoder lets them through.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._use_fast_path()

    def with_msgpack_allowlist(self, extra_allowlist: Iterable[Any]) -> JsonPlusSerializer:
        clone = super().with_msgpack_allowlist(extra_allowlist)
        if clone is not self and isinstance(clone, MessageSerializer):
            clone._use_fast_path()  # the copy got a new stock decoder: wrap that one
        return clone

    def _use_fast_path(self) -> None:
        stock = getattr(self, "_unpack_ext_hook", None)
        if stock is not None:  # a LangGraph without the hook: stay on the stock path
            self._unpack_ext_hook = _fast_messages(stock)


def _fast_messages(fallback: Callable[[int, bytes], Any]) -> Callable[[int, bytes], Any]:
    """An ext hook that builds chat messages itself and hands all else to ``fallback``."""

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

    return ext_hook
