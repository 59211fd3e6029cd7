"""Who acts: model adapters (the MiroThinker protocol over an OpenAI-compatible
server, or any LangChain chat model), prompts, the simulated model server, and
tool sets. Builds on ``state``.
"""

if __name__ != "mirograph.agents":  # e.g. `import agents` run from the checkout's root
    raise ImportError(f"import mirograph.agents, not {__name__}: its modules must load once")
