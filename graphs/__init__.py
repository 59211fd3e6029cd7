"""How agents are wired: the LangGraph builders of one agent's loop (model step,
tool runner, reply checks), sub-agents as tools, and custom graphs from a flow.
Builds on ``agents`` and ``state``.
"""

if __name__ != "mirograph.graphs":  # e.g. `import graphs` run from the checkout's root
    raise ImportError(f"import mirograph.graphs, not {__name__}: its modules must load once")
