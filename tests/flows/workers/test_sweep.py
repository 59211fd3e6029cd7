"""The takeover sweep continues what the fleet owes, and only that."""

from __future__ import annotations

from fleet_kit import submit_all

from mirograph.flows.workers.app import QUEUE
from mirograph.flows.workers.broker import QUEUED_KEY
from mirograph.flows.workers.sweep import sweep


def test_a_queued_run_whose_task_waits_is_left_and_one_taken_by_a_dead_worker_is_sent_again(
    postgres_server, redis_server, flows
) -> None:
    store, broker = postgres_server.url, redis_server.url
    submit_all({"waits": "single", "taken": "single"}, flows, store, broker)
    client = redis_server.client()
    assert sweep(store, broker) == []  # both tasks wait in the queue
    # A worker takes "taken"'s message off the queue and dies before the run's lease.
    messages = client.lrange(QUEUE, 0, -1)
    taken = next(m for m in messages if b"'taken'" in m or b'"taken"' in m)
    assert client.lrem(QUEUE, 1, taken) == 1
    assert sweep(store, broker) == ["taken"]
    assert sorted(client.hvals(QUEUED_KEY)) == [b"taken", b"waits"]
    assert sweep(store, broker) == []  # its continuation waits now
