"""How a flow file describes one model endpoint.

Secrets are never part of this: the API key is read from the environment
variable named by ``api_key_env`` at the moment the client is built.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mirograph.agents.fields import DAY_S, Bool, Float, Int

#: Tokens a request needs besides the reply: system prompt, question, tool list.
MIN_PROMPT_TOKENS = 1024
#: Largest context window accepted (no model serves more).
MAX_CONTEXT_TOKENS = 100_000_000


class ModelConfig(BaseModel):
    """One model endpoint, referenced by name from the agents of a flow."""

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["mirothinker", "native"] = "mirothinker"
    base_url: str = "http://localhost:8000/v1"
    model: str = "mirothinker"
    #: For ``native``: the LangChain provider (``openai``, ``anthropic``...).
    provider: str | None = None
    #: Name of the environment variable that holds the API key.
    api_key_env: str = Field("MIROGRAPH_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    temperature: Float = Field(1.0, ge=0, le=2)
    top_p: Float = Field(0.95, gt=0, le=1)
    repetition_penalty: Float = Field(1.05, gt=0, le=2)
    #: Reply budget of one request; the prompt gets ``context_tokens - max_tokens``.
    max_tokens: Int = Field(16384, gt=0, le=MAX_CONTEXT_TOKENS)
    context_tokens: Int = Field(262144, gt=0, le=MAX_CONTEXT_TOKENS)
    timeout_s: Float = Field(600.0, gt=0, le=DAY_S)
    #: Retries of a failed model call (backoff with jitter); past them the run pauses.
    max_retries: Int = Field(5, ge=0, le=100)
    #: First backoff delay in seconds; doubles per retry (with jitter), up to 60 s.
    retry_base_s: Float = Field(1.0, ge=0, le=60)
    streaming: Bool = False

    @model_validator(mode="after")
    def _room_for_a_prompt(self) -> ModelConfig:
        room = self.context_tokens - self.max_tokens
        if room < MIN_PROMPT_TOKENS:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) leaves {room} of context_tokens"
                f" ({self.context_tokens}) for the prompt; at least {MIN_PROMPT_TOKENS} are"
                " needed: lower max_tokens or raise context_tokens"
            )
        return self

    def api_key(self) -> str:
        """The key from the environment; local servers (vLLM, sim-model) accept any."""
        return os.environ.get(self.api_key_env) or "EMPTY"
