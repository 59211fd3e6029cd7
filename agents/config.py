"""How a flow file describes one model endpoint.

Secrets are never part of this: the API key is read from the environment
variable named by ``api_key_env`` at the moment the client is built.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    """One model endpoint, referenced by name from the agents of a flow."""

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["mirothinker", "native"] = "mirothinker"
    base_url: str = "http://localhost:8000/v1"
    model: str = "mirothinker"
    #: For ``native``: the LangChain provider (``openai``, ``anthropic``...).
    provider: str | None = None
    #: Name of the environment variable that holds the API key.
    api_key_env: str = "MIROGRAPH_API_KEY"
    temperature: float = 1.0
    top_p: float = 0.95
    repetition_penalty: float = 1.05
    max_tokens: int = Field(16384, gt=0)
    context_tokens: int = Field(262144, gt=0)
    timeout_s: float = Field(600.0, gt=0)
    #: Retries of a failed model call (backoff with jitter); past them the run pauses.
    max_retries: int = Field(5, ge=0)
    #: First backoff delay in seconds; doubles per retry (with jitter), up to 60 s.
    retry_base_s: float = Field(1.0, ge=0)
    streaming: bool = False

    def api_key(self) -> str:
        """The key from the environment; local servers (vLLM, sim-model) accept any."""
        return os.environ.get(self.api_key_env) or "EMPTY"
