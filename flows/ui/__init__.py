"""The web view: ``mirograph ui`` serves a browser page that watches and steers runs.

A Starlette app (``app``) serves a single page (``static/``: plain HTML, CSS and
JavaScript shipped in the package, no build step) and the JSON API it talks to
(``api``, documented in docs/reference.md "Web view"). A run's page is built from
what ``show`` reads (``run_view``: the agent tree, every turn, tokens per turn)
and from its events (the timeline; ``stream`` follows them live as server-sent
events, from the store or Redis, so runs on any worker are followed too).
Steering (``steering``) has the CLI's effects: a start or a resume is a
``mirograph run`` / ``resume`` process of its own (or a task for the workers), a
pause is the registry's request. ``guard`` decides who may do what: local binds
only from this machine's pages, any other address only with the token.
``bench_view`` shows ``mirograph bench`` output folders.
"""
