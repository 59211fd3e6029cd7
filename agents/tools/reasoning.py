"""The ``reasoning`` tool set: ``reasoning(question)``, answered by a reasoning model.

The model is one of the flow's models, named in the options
(``{reasoning: {model: reasoner}}``); it gets the question alone, with no
tools, and its visible answer (thinking removed) is the tool's result.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from mirograph.agents.fields import Int
from mirograph.agents.mirothinker.thinking import split_thinking
from mirograph.agents.model_failures import classify_model_error
from mirograph.agents.models import build_chat_model
from mirograph.agents.tools.base import ToolContext, on_server

SERVER = "tool-reasoning"
SYSTEM = (
    "You are a careful reasoning assistant. Think the problem through step by step,"
    " check your work, and end with a clear, justified answer."
)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The flow model that answers (a strong reasoning model).
    model: str
    #: Reply budget of one answer.
    max_tokens: Int = Field(16384, gt=0, le=100_000_000)


def make_tools(ctx: ToolContext) -> list[BaseTool]:
    options: Options = ctx.options
    config = ctx.models[options.model].model_copy(update={"max_tokens": options.max_tokens})
    state: dict[str, object] = {}

    async def reasoning(question: str) -> str:
        """Ask a strong reasoning model a self-contained question (math, logic, puzzles);
        it cannot look anything up, so give it every fact it needs.

        Args:
            question: The full question, with all the facts it needs.

        Returns:
            The model's answer as text, its thinking left out. An error message if the
            model fails or answers nothing.
        """
        model = state.get("model")
        if model is None:  # one client per run, opened on first use
            model = state["model"] = build_chat_model(config)
            ctx.close_later(model)
        messages = [SystemMessage(SYSTEM), HumanMessage(question)]
        try:
            reply = await model.ainvoke(messages)  # type: ignore[attr-defined]
        except Exception as exc:
            mapped = classify_model_error(exc, config.base_url)
            raise ToolException(f"the reasoning model failed: {mapped or exc}") from None
        answer = split_thinking(reply.text)[1]
        if not answer:
            raise ToolException("the reasoning model returned an empty answer")
        return answer

    tool = StructuredTool.from_function(
        coroutine=reasoning, parse_docstring=True, handle_tool_error=False
    )
    return [on_server(tool, SERVER)]
