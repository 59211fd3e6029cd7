"""What tests share: the CLI as a subprocess (``testkit``), a loop on the simulated
model (``loop_kit``), a local HTTP server (``http_server``), and the policies, tools
and MCP servers that flows in tests name as ``support.MODULE:ATTRIBUTE``.

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in ``pyproject.toml``) and the
CLI subprocesses get it on ``PYTHONPATH``, so this package is ``support`` everywhere.
"""

if __name__.startswith("mirograph."):  # an editable install maps the checkout's root
    raise ImportError("tests are not part of the mirograph package")
