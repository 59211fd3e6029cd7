"""The workers' clocks, in one place: how a takeover fits within ``--takeover-after``.

A worker's leases expire a third of the takeover time after their last renewal
(renewed four times per TTL, at most every 5 s), and the sweep looks every sixth
of it: a runner lost with its machine is seen dead within ~1/3 + 1/6 of the time,
leaving the rest for a worker to take the continuation and start it. (On the dead
worker's own host its leases die with its process, at once.)
"""

from __future__ import annotations

#: The default takeover time: a dead worker's runs continue elsewhere within it.
TAKEOVER_AFTER_S = 60.0
#: Celery's Redis transport redelivers an unacknowledged task after this (its default).
VISIBILITY_TIMEOUT_S = 3600.0


def lease_ttl_for(takeover_after_s: float) -> float:
    """A worker's lease TTL: a third of the takeover time."""
    return takeover_after_s / 3


def sweep_every(takeover_after_s: float) -> float:
    """How often the sweep looks for runs whose runner is gone: a sixth of the
    takeover time (leases expire in a third), so a takeover fits well within it."""
    return max(0.5, takeover_after_s / 6)


def restore_every(visibility_timeout_s: float) -> float:
    """How often a worker looks for unacknowledged tasks older than the visibility
    timeout (to redeliver them): a quarter of it, at most every 10 s. Celery's Redis
    transport looks every 10 x 10 s by default, so a task is redelivered up to 100 s
    late whatever the timeout (``benchmarks/visibility_timeout.py``)."""
    return min(10.0, max(0.5, visibility_timeout_s / 4))
