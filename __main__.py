"""``python -m mirograph`` is the ``mirograph`` command."""

from mirograph.flows.cli import app

app(prog_name="mirograph")
