"""A model and a tool whose text is HTML meant to run in a web page.

``reply`` (a sim-model policy) thinks, speaks and answers with markup that
would run script if a page inserted it as HTML, and calls ``markup_text:page``
once; ``page`` returns a long result with more of it at its start and at its end
(past the preview, so it arrives only when the full text is asked for). The web
view must show all of it as text.
"""

from __future__ import annotations

from typing import Any

from mirograph.agents.mirothinker.parsing import render_call
from mirograph.agents.prompts import is_closing_request

SCRIPT = "<script>window.__xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'\">"
SVG = "<svg onload=\"window.__xss = 'svg'\"></svg>"
MARKUP = f"{SCRIPT}{IMG}{SVG}"
#: Where the result's tail begins: past any preview.
FILLER = "plain words " * 400


def reply(body: dict[str, Any]) -> str:
    messages = body["messages"]
    if is_closing_request(messages[-1]["content"]):
        return f"Closing {IMG}</think>\n\n\\boxed{{forty-two {SCRIPT}}}"
    if any(m["role"] == "assistant" for m in messages):
        return f"The page spoke {SVG}.</think>\n\nIt said {IMG} plainly."
    call = render_call("markup_text", "page", {"url": f"https://example.org/{SCRIPT}"})
    return f"I will read {SCRIPT}.</think>\n\nReading {IMG}.\n\n{call}"


def page(url: str) -> str:
    """Read the page at `url`."""
    return f"HEAD {IMG} {url}\n{FILLER}\nTAIL {SCRIPT}{SVG}"
