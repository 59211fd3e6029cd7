"""What users run: flow files and their loader, the runner (start, resume, pause,
leases), the ``mirograph`` command line, views and export. The top layer.
"""

if __name__ != "mirograph.flows":  # e.g. `import flows` run from the checkout's root
    raise ImportError(f"import mirograph.flows, not {__name__}: its modules must load once")
