"""Performance scripts, not part of the installed package and not run by the tests.

Run each from the repository root as a module, e.g. ``python -m benchmarks.long_run``:
the repository root is then on ``sys.path``, so a script imports its own policies
(``benchmarks.bench_policy``) and the tests' workloads (``tests.support``) by name.
"""

if __name__.startswith("mirograph."):  # an editable install maps the checkout's root
    raise ImportError("benchmarks are not part of the mirograph package")
