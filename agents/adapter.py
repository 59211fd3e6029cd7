"""What a chat-model adapter may offer the engine beyond LangChain's interface.

Any LangChain chat model works through ``ainvoke``. An adapter that knows its
server better may also declare one or both of these capabilities by deriving
from them (a method of the same name on another model is not taken as one);
the agent loop checks for them once per agent, not for one adapter class:

- ``CountsTokens``: the exact prompt size, asked only when the estimate says a
  request is close to the context limit;
- ``RepliesDirectly``: one reply without LangChain's callback bookkeeping,
  which grows with the history. The loop takes it only while nobody observes
  the call (``observed``): a tracer or a streaming caller needs the callbacks.

``MiroThinkerChatModel`` implements both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

# LangChain's own test for "is LangSmith tracing on" (an environment variable,
# a ``tracing_v2_enabled()`` block, or a trace in progress). langchain-core 1.7
# has no public equivalent: its callback manager calls this private function to
# decide whether to add a tracer, and asking the same function keeps the
# direct path from ever hiding a call that LangChain would have traced.
from langchain_core.tracers.context import _tracing_v2_is_enabled


class CountsTokens(ABC):
    """The adapter can tell a prompt's exact size."""

    @abstractmethod
    async def count_tokens(self, messages: Sequence[BaseMessage]) -> int | None:
        """The exact prompt tokens of ``messages``; None when the server cannot tell."""
        ...


class RepliesDirectly(ABC):
    """The adapter can reply without LangChain's callbacks."""

    @abstractmethod
    async def areply(
        self,
        messages: Sequence[BaseMessage],
        tool_servers: dict[str, str] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> AIMessage:
        """One reply to ``messages``, without LangChain's callbacks.

        ``tool_servers`` maps each tool the model may call to its server (empty:
        no tools); ``max_tokens`` overrides the reply budget.
        """
        ...


def observed(config: RunnableConfig) -> bool:
    """Whether a callback handler (streaming, tracing) should see a model call made
    with ``config``: then the call must go through LangChain (``ainvoke``)."""
    callbacks = config.get("callbacks")
    handlers = getattr(callbacks, "handlers", callbacks)
    return bool(handlers) or bool(_tracing_v2_is_enabled())
