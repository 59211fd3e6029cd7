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


class RetentionWindow:
    """Keep-K views of one growing history, each built in time proportional to what was added.

    A 600-turn history holds 1,200 messages and the model sees a new view every
    turn; rebuilding it from scratch would make each turn slower than the last.
    The window remembers the view it built and, when the next history extends
    the previous one, only folds in the new messages. Any other history (a
    trimmed copy, another thread) starts a fresh pass.
    """

    def __init__(self, keep: int, block: int = 1) -> None:
        self.keep = keep
        self.block = max(block, 1)
        self._reset()

    def _reset(self) -> None:
        self._source: list[BaseMessage] = []
        self._view: list[BaseMessage] = []
        self._groups: list[list[int]] = []
        self._omitted_groups = 0
        self._seen_task = False
        self._previous_was_result = False

    def view(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """The history as sent to the model; omitted results are placeholder copies."""
        if not self._extends(messages):
            self._reset()
        for message in messages[len(self._source) :]:
            self._add(message)
        if self.keep >= 0:
            target = omitted_count(len(self._groups), self.keep, self.block)
            for group in self._groups[self._omitted_groups : target]:
                for i in group:
                    self._view[i] = self._view[i].model_copy(update={"content": OMITTED})
            self._omitted_groups = max(self._omitted_groups, target)
        return list(self._view)

    def kept_results(self) -> list[int]:
        """Indices (in the last view) of the results sent in full."""
        groups = self._groups[self._omitted_groups :]
        return [i for group in groups for i in group]

    def groups(self) -> list[list[int]]:
        """Indices of the user-side messages after the task, one group per turn."""
        return [list(group) for group in self._groups]

    def _extends(self, messages: Sequence[BaseMessage]) -> bool:
        n = len(self._source)
        return len(messages) >= n and (n == 0 or messages[n - 1] is self._source[n - 1])

    def _add(self, message: BaseMessage) -> None:
        i = len(self._source)
        self._source.append(message)
        self._view.append(message)
        if isinstance(message, (SystemMessage, AIMessage)):
            self._previous_was_result = False
            return
        if not self._seen_task:
            self._seen_task = True
            return
        # Consecutive ToolMessages answering one assistant message are one
        # group: the MiroThinker protocol sends them back as ONE user message.
        if isinstance(message, ToolMessage) and self._previous_was_result and self._groups:
            self._groups[-1].append(i)
        else:
            self._groups.append([i])
        self._previous_was_result = isinstance(message, ToolMessage)


def omitted_count(results: int, keep: int, block: int = 1) -> int:
    """How many of the oldest ``results`` a view omits.

    ``block == 1`` is keep-K exactly as trained: the last ``keep`` in full.
    With ``block == B`` results leave the window B at a time. Between those
    moments the prompt only grows at its end, which a server's prefix cache
    can reuse. The number kept in full cycles through
    ``keep - (B-1)//2 ... keep + B//2``, so on average no more result text is
    sent than with keep-K.
    """
    if block <= 1:
        return max(results - keep, 0)
    low = max(keep - (block - 1) // 2, 0)
    return max((results - low) // block * block, 0)


def result_groups(messages: Sequence[BaseMessage]) -> list[list[int]]:
    """Indices of the user-side messages after the task, one group per turn."""
    window = RetentionWindow(-1)
    window.view(messages)
    return window.groups()


def retained_view(messages: Sequence[BaseMessage], keep: int, block: int = 1) -> list[BaseMessage]:
    """The history as sent to the model with the last ``keep`` results in full.

    ``keep < 0`` keeps everything. Omitted messages are copies; the stored
    history is untouched.
    """
    return RetentionWindow(keep, block).view(messages)
