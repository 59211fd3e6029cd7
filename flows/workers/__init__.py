"""Workers: investigations run by a fleet of Celery workers, with Redis as the broker.

``mirograph submit`` stores a run as ``queued`` and queues a task naming it;
``mirograph worker`` processes take tasks and run many investigations at once
on one event loop each (they wait on model and tool calls, not the CPU). Who
runs a run is decided by the run's lease in the store, not by the broker: a task
for a run another live runner holds ends at once, and a task for a run that
ended is a no-op, so a duplicate task is harmless. That is what crash takeover
builds on: workers hold short leases, and a periodic sweep (Celery beat) queues
the continuation of every run that should be running but whose runner is gone,
long before Redis would redeliver the dead worker's unacknowledged task
(``visibility_timeout``, an hour by default; ``benchmarks/visibility_timeout.py``).
"""
