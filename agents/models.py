"""Build the chat model a flow's model entry names, for either protocol.

Both adapters return standard LangChain ``AIMessage``s with ``tool_calls``;
nothing downstream knows which protocol produced them.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from mirograph.agents.config import ModelConfig
from mirograph.agents.mirothinker.chat_model import MiroThinkerChatModel


def build_chat_model(config: ModelConfig) -> BaseChatModel:
    if config.protocol == "mirothinker":
        return MiroThinkerChatModel(
            base_url=config.base_url,
            model=config.model,
            api_key=config.api_key(),
            temperature=config.temperature,
            top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
            max_tokens=config.max_tokens,
            timeout_s=config.timeout_s,
            max_retries=0,  # the agent loop retries (see agents/retry.py)
            **_streaming(config),
        )
    return build_native_model(config)


def build_native_model(config: ModelConfig) -> BaseChatModel:
    """Any model ``init_chat_model`` accepts, with native tool calls."""
    from langchain.chat_models import init_chat_model

    provider = config.provider or ("openai" if ":" not in config.model else None)
    kwargs: dict[str, object] = {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
        "timeout": config.timeout_s,
        "max_retries": 0,  # the agent loop retries (see agents/retry.py)
        "api_key": config.api_key(),
        **_streaming(config),
    }
    if config.base_url:
        kwargs["base_url"] = config.base_url
    if provider == "openai" and config.repetition_penalty != 1.0:
        kwargs["extra_body"] = {"repetition_penalty": config.repetition_penalty}
    return init_chat_model(config.model, model_provider=provider, **kwargs)


def _streaming(config: ModelConfig) -> dict[str, bool]:
    """``streaming=True`` when the flow asks for it, else nothing.

    To LangChain an explicit ``streaming=False`` is a hard opt-out: a caller
    that streams (Studio, ``stream_mode="messages"``, ``astream_events``) would
    get each reply only once it is complete. Left unset, tokens stream whenever
    someone listens, and the flow's ``streaming`` only decides whether an
    unobserved call asks the server for a stream.
    """
    return {"streaming": True} if config.streaming else {}
