"""Keep-K retention: the view of a history that a model is shown.

The stored history is never changed. Per request, the system prompt, the first
user message (the task) and every assistant message are sent in full; every
later user-side message (tool results, sub-agent reports, closing requests)
counts as a tool result, and only the last K of those keep their content.
Older ones keep their place with a fixed placeholder text, as the MiroThinker
weights were trained.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

OMITTED = "Tool result is omitted to save tokens."


def result_groups(messages: Sequence[BaseMessage]) -> list[list[int]]:
    """Indices of the user-side messages after the task, one group per turn.

    Consecutive ``ToolMessage``s answering one assistant message are one group:
    the MiroThinker protocol sends them back as ONE user message.
    """
    groups: list[list[int]] = []
    seen_task = False
    previous_was_result = False
    for i, message in enumerate(messages):
        if isinstance(message, (SystemMessage, AIMessage)):
            previous_was_result = False
            continue
        if not seen_task:
            seen_task = True
            continue
        if isinstance(message, ToolMessage) and previous_was_result and groups:
            groups[-1].append(i)
        else:
            groups.append([i])
        previous_was_result = isinstance(message, ToolMessage)
    return groups


def retained_view(messages: Sequence[BaseMessage], keep: int) -> list[BaseMessage]:
    """The history as sent to the model with the last ``keep`` results in full.

    ``keep < 0`` keeps everything. Omitted messages are copies; the stored
    history is untouched.
    """
    view = list(messages)
    if keep < 0:
        return view
    groups = result_groups(view)
    omitted = groups[: max(len(groups) - keep, 0)]
    for group in omitted:
        for i in group:
            view[i] = view[i].model_copy(update={"content": OMITTED})
    return view
