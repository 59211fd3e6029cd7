"""Models built from a flow stream tokens to a caller that streams, whatever the protocol.

A flow's ``streaming: false`` (the default) only means an unobserved call asks
for a plain body; it must not become LangChain's hard opt-out.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from mirograph.agents.config import ModelConfig
from mirograph.agents.models import build_chat_model
from mirograph.agents.sim.server import SimServer

REPLY = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"


@pytest.mark.parametrize("protocol", ["mirothinker", "native"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_astream_events_streams_tokens(protocol: str, streaming: bool) -> None:
    with SimServer(lambda body: REPLY) as srv:
        config = ModelConfig(
            protocol=protocol, base_url=srv.base_url, max_retries=0, streaming=streaming
        )
        model = build_chat_model(config)
        pieces = [
            event["data"]["chunk"].content
            async for event in model.astream_events([HumanMessage("Count.")], version="v2")
            if event["event"] == "on_chat_model_stream"
        ]
    assert len([p for p in pieces if p]) > 3 and "".join(pieces) == REPLY
