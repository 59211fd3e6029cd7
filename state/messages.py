"""The message channel: a history stored as per-turn deltas.

A turn writes only the messages it adds; LangGraph's ``DeltaChannel`` stores
those writes and rebuilds the list on load, so checkpoint bytes per turn stay
proportional to what the turn added instead of to the length of the history.
A ``RemoveMessage(id=...)`` write drops that message: a turn rolled back after
its tool results leaves no trace in what the model is sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from langchain_core.messages import AnyMessage, BaseMessage, RemoveMessage
from langgraph.channels import DeltaChannel

#: Full snapshots are written every this many updates to the channel; between
#: them a load replays the per-step writes. Tuned against resume time.
SNAPSHOT_FREQUENCY = 300


def append_messages(current: list[AnyMessage], writes: Sequence[Any]) -> list[AnyMessage]:
    """Fold a batch of writes (a message or a list of messages each) onto the history;
    a ``RemoveMessage`` drops the message with its id (none there: nothing).

    Pure and batching-invariant, as ``DeltaChannel`` requires: replaying two
    batches one after the other equals replaying their concatenation.
    """
    history: list[AnyMessage] | None = None  # copied on the first write
    for write in writes:
        for message in (write,) if isinstance(write, BaseMessage) else write:
            if history is None:
                history = list(current)
            if isinstance(message, RemoveMessage):
                _remove(history, message.id)
            else:
                history.append(message)
    return current if history is None else history


def _remove(history: list[AnyMessage], message_id: str | None) -> None:
    """Drop the message with ``message_id``, searched from the newest (the usual one)."""
    for i in range(len(history) - 1, -1, -1):
        if history[i].id == message_id:
            del history[i]
            return


Messages = Annotated[
    list[AnyMessage], DeltaChannel(append_messages, snapshot_frequency=SNAPSHOT_FREQUENCY)
]


def append_items(current: list[Any], writes: Sequence[list[Any]]) -> list[Any]:
    """Fold writes (lists of items) onto a list; pure and batching-invariant."""
    added = [item for write in writes for item in write]
    return [*current, *added] if added else current


#: Query keys an agent has used (duplicate detection), stored as per-turn deltas.
Queries = Annotated[list[str], DeltaChannel(append_items, snapshot_frequency=SNAPSHOT_FREQUENCY)]

#: Records of finished sub-agent invocations, stored as per-turn deltas.
Invocations = Annotated[
    list[dict[str, Any]], DeltaChannel(append_items, snapshot_frequency=SNAPSHOT_FREQUENCY)
]


def merge_results(current: dict[str, Any] | None, update: dict[str, Any] | None) -> dict[str, Any]:
    """Gather the results of one turn's parallel calls by call id; ``None`` empties it."""
    if update is None:
        return {}
    return {**(current or {}), **update}


#: One turn's results while its sub-agents run in parallel; emptied when they are merged.
PendingResults = Annotated[dict[str, Any], merge_results]


def new_id() -> str:
    """A fresh message or tool-call id: unique across runs, so that a message added by
    a resumed step never replaces one of an earlier step."""
    return uuid.uuid4().hex
