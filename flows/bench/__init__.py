"""Benchmarks: ``mirograph bench`` evaluates a flow on a published dataset.

A dataset is read by its own loader (``datasets/``: one module per published
format) into :class:`~mirograph.flows.bench.tasks.BenchTask`s; every attempt at
a task is an ordinary run in the store, run here or on the workers (``fleet``),
so ``show``, ``export`` and ``resume`` work on it and a killed ``bench``
continues where it stopped (``harness``; the output folder's ``bench.json`` in
``folder``, its ``results.jsonl`` in ``results``). Each answer is judged
(``judges/``: GAIA's exact-match rules or an LLM judge with per-benchmark
criteria), and the attempts are scored (``scoring``: avg@k, pass@k, per level),
written (``session``, ``compat``: MiroThinker-compatible files) and drawn
(``plots``).
"""
