"""Where the simulated server follows vLLM's flags and checks, with vLLM's defaults.

A real vLLM refuses an unknown model name, always enforces a context length,
reports ``prompt_tokens_details`` only when asked, splits the thinking out only
with a reasoning parser and returns native ``tool_calls`` only with a tool
parser. The simulated server does the same by default, so that tests take the
paths a real server makes the engine take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MAX_MODEL_LEN",
    "REASONING_FIELDS",
    "REASONING_PARSERS",
    "VllmOptions",
    "context_error",
    "split_reasoning",
    "tool_choice_error",
    "unknown_model_error",
    "wants_tool_calls",
]

#: vLLM's ``--max-model-len`` in the documented serve command (256K tokens).
DEFAULT_MAX_MODEL_LEN = 262_144
#: vLLM's reasoning parsers for models that close their thinking with ``</think>``.
REASONING_PARSERS = ("deepseek_r1", "qwen3")
#: Where a reasoning parser puts the thinking: ``reasoning`` (vLLM since late 2025,
#: the only field since early 2026), or ``reasoning_content`` (older vLLM, SGLang).
REASONING_FIELDS = ("reasoning", "reasoning_content")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class VllmOptions:
    """The vLLM server flags the simulated server honours; the defaults are vLLM's.

    - ``model_name``: ``--served-model-name``; other names get HTTP 404.
    - ``max_model_len``: ``--max-model-len``; longer requests get HTTP 400.
    - ``enable_prompt_tokens_details``: ``--enable-prompt-tokens-details``;
      without it ``usage.prompt_tokens_details`` is null (no cached tokens).
    - ``reasoning_parser``: ``--reasoning-parser``; the thinking before
      ``</think>`` then comes back in ``reasoning_field``, not in ``content``.
    - ``tool_call_parser``: ``--enable-auto-tool-choice --tool-call-parser``;
      without it a request with ``tools`` (tool choice "auto") gets HTTP 400.
    """

    model_name: str = "mirothinker"
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    enable_prompt_tokens_details: bool = False
    reasoning_parser: str | None = None
    reasoning_field: str = "reasoning"
    tool_call_parser: str | None = None

    def __post_init__(self) -> None:
        if not self.model_name.strip():
            raise ValueError("the served model name is empty")
        if type(self.max_model_len) is not int or self.max_model_len < 1:
            raise ValueError(f"max_model_len must be a whole number >= 1, not {self.max_model_len}")
        if self.reasoning_parser is not None and self.reasoning_parser not in REASONING_PARSERS:
            raise ValueError(
                f"unknown reasoning parser {self.reasoning_parser!r};"
                f" use one of {', '.join(REASONING_PARSERS)}"
            )
        if self.reasoning_field not in REASONING_FIELDS:
            raise ValueError(
                f"unknown reasoning field {self.reasoning_field!r};"
                f" use one of {', '.join(REASONING_FIELDS)}"
            )
        if self.tool_call_parser is not None and not self.tool_call_parser.strip():
            raise ValueError("the tool call parser name is empty")


def unknown_model_error(body: Mapping[str, Any], served: str) -> str | None:
    """vLLM's complaint about a model it does not serve (a request naming none is served)."""
    model = body.get("model")
    if model is None or model == served:
        return None
    return f"The model `{model}` does not exist."


def tool_choice_error(body: Mapping[str, Any], options: VllmOptions) -> str | None:
    """vLLM's refusal of tools with tool choice "auto" (the default) and no tool parser."""
    if not body.get("tools") or options.tool_call_parser is not None:
        return None
    if body.get("tool_choice", "auto") != "auto":
        return None
    return '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


def continuation_error(body: Mapping[str, Any]) -> str | None:
    """vLLM's refusal of a request that asks to continue the last message wrongly:
    with a new assistant turn as well (``add_generation_prompt`` defaults to true),
    or with a last message that is not the assistant's."""
    if not body.get("continue_final_message"):
        return None
    if body.get("add_generation_prompt", True):
        return "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
    messages = body.get("messages") or [{}]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    if last.get("role") != "assistant":
        return "continue_final_message is set but the final message is not an assistant message."
    return None


def wants_tool_calls(body: Mapping[str, Any], options: VllmOptions) -> bool:
    """Whether the reply's calls come back as native ``tool_calls``."""
    if not body.get("tools") or body.get("tool_choice") == "none":
        return False
    return options.tool_call_parser is not None or body.get("tool_choice", "auto") != "auto"


def context_error(
    body: Mapping[str, Any], prompt_tokens: int, limit: int
) -> tuple[str, str] | None:
    """vLLM's current words (parameter, message) when the request does not fit ``limit``.

    The prompt alone filling the window, and the prompt plus ``max_tokens``
    overflowing it, are worded differently; both name the maximum context length.
    """
    if prompt_tokens >= limit:
        return "input_tokens", (
            f"This model's maximum context length is {limit} tokens. However, your request has"
            f" {prompt_tokens} input tokens. Please reduce the length of the input messages."
            f" (parameter=input_tokens, value={prompt_tokens})"
        )
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(asked, int) or prompt_tokens + asked <= limit:
        return None
    return "max_tokens", (
        f"'max_tokens' or 'max_completion_tokens' is too large: {asked}. This model's maximum"
        f" context length is {limit} tokens and your request has {prompt_tokens} input tokens"
        f" ({asked} > {limit} - {prompt_tokens}). (parameter=max_tokens, value={asked})"
    )


def split_reasoning(text: str, parser: str) -> tuple[str | None, str]:
    """(reasoning, content) of a raw reply as vLLM's ``parser`` splits it.

    The first ``</think>`` ends the thinking; an opening ``<think>`` is dropped.
    Without ``</think>``, ``qwen3`` treats it all as content and ``deepseek_r1``
    as thinking still going on.
    """
    head, opened, tail = text.partition(_THINK_OPEN)
    text = tail if opened else head
    reasoning, closed, content = text.partition(_THINK_CLOSE)
    if closed:
        return reasoning, content
    return (None, text) if parser == "qwen3" else (text, "")
