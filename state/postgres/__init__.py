"""The run store on PostgreSQL: what must not be lost, shared by every machine.

The same contracts as the SQLite store (``state.registry``, ``state.leases``),
on a server that many workers reach at once: one row per run, one lease per run
with a fencing token, so a runner that lost its lease can never write again.
"""
