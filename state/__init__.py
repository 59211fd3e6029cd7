"""What persists: the graph state's schema, the retention view each agent's model
sees, the checkpoint saver, blobs, leases and the run registry, behind a store URL.
The bottom layer: it imports nothing else of mirograph.
"""

if __name__ != "mirograph.state":  # e.g. `import state` run from the checkout's root
    raise ImportError(f"import mirograph.state, not {__name__}: its modules must load once")
