"""The broker side of the workers: which Redis, whether it answers, what is queued.

Besides Celery's own messages, one Redis key, ``mirograph:queued`` (task id ->
run id of each task sent and not yet taken), tells the takeover sweep which
runs already have a task waiting, so it sends no continuation beside them. It may
be lost with Redis, like the tasks themselves: the store says which runs the
fleet owes (``queued``, or ``running`` under a dead worker's lease), and the
sweep queues them again.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mirograph.errors import BrokerUnavailableError, BrokerURLError
from mirograph.state.store import shown_url

if TYPE_CHECKING:
    import redis
    from celery import Celery

log = logging.getLogger(__name__)

#: The environment variable naming the broker (a ``redis://`` URL).
BROKER_ENV = "MIROGRAPH_BROKER"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
#: Tasks sent and not yet taken by a worker (a hash: task id -> run id).
QUEUED_KEY = "mirograph:queued"
#: Seconds to wait for Redis before saying it is not there.
CONNECT_TIMEOUT_S = 3.0
_START_HINT = (
    "start Redis there (e.g. `redis-server --port {port}` or `systemctl start redis-server`)"
    " or pass --broker (or set MIROGRAPH_BROKER) naming a running one"
)


def broker_url(explicit: str | None = None) -> str:
    """The broker given, else ``$MIROGRAPH_BROKER``, else Redis on this machine;
    ``BrokerURLError`` for a URL that is not Redis's."""
    url = explicit or os.environ.get(BROKER_ENV) or DEFAULT_BROKER
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise BrokerURLError(
            f"broker URL {shown_url(url)} is not a Redis URL; workers use Redis as their"
            " broker: pass --broker redis://HOST:PORT/DB"
        )
    return url


def client(url: str) -> redis.Redis:
    """A Redis client for ``url`` that gives up in seconds, never hangs."""
    import redis

    return redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=10, decode_responses=True
    )


def unavailable(url: str, exc: BaseException) -> BrokerUnavailableError:
    """The one line for a broker that cannot be reached."""
    from mirograph.errors import server_port

    reason = " ".join(str(exc).split()) or type(exc).__name__
    port = server_port(url.replace("redis", "http", 1)) if "://" in url else 6379
    hint = _START_HINT.format(port=port if port not in (80, 443) else 6379)
    return BrokerUnavailableError(f"cannot reach the broker {shown_url(url)} ({reason}); {hint}")


def check_broker(url: str) -> None:
    """Raise ``BrokerUnavailableError`` unless the broker at ``url`` answers a PING."""
    import redis

    try:
        with client(url) as probe:
            probe.ping()
    except (redis.RedisError, OSError) as exc:
        raise unavailable(url, exc) from None
    except (TypeError, ValueError) as exc:  # redis-py's reading of the URL's options
        raise BrokerURLError(
            f"broker URL {shown_url(url)} cannot be read ({' '.join(str(exc).split())});"
            " pass --broker redis://HOST:PORT/DB"
        ) from None


def enqueue(url: str, run_id: str) -> str:
    """Send the task that runs (or continues) ``run_id``.

    Redis is asked first (bounded), so an unreachable broker is one line, never a
    hang; returns the task id."""
    with enqueuer(url) as send:
        return send(run_id)


@contextmanager
def enqueuer(url: str) -> Iterator[Callable[[str], str]]:
    """``enqueue`` for many runs on one Redis connection (a connection per run cost a
    submitter of many runs most of its time): ``send(run_id)`` returns the task id,
    or raises ``BrokerUnavailableError``."""
    import redis
    from kombu.exceptions import OperationalError

    from mirograph.flows.workers.app import RUN_TASK

    def send(run_id: str) -> str:
        task_id = str(uuid.uuid4())
        try:
            redis_client.hset(QUEUED_KEY, task_id, run_id)
            sender(url).send_task(RUN_TASK, args=[run_id], task_id=task_id, retry=False)
        except (redis.RedisError, OSError, OperationalError) as exc:
            raise unavailable(url, exc) from None
        return task_id

    with client(url) as redis_client:
        yield send


_SENDERS: dict[str, Celery] = {}
_SENDERS_LOCK = threading.Lock()


def sender(url: str) -> Celery:
    """A Celery app that sends to the broker at ``url`` (one per URL and process: its
    connections are pooled by URL)."""
    from celery import Celery

    from mirograph.flows.workers.app import configure

    with _SENDERS_LOCK:
        if url not in _SENDERS:
            _SENDERS[url] = configure(Celery("mirograph", set_as_current=False), url)
        return _SENDERS[url]


def taken(url: str, task_id: str | None) -> None:
    """A worker took task ``task_id``: it is no longer waiting (best effort)."""
    if not task_id:
        return
    try:
        with client(url) as redis_client:
            redis_client.hdel(QUEUED_KEY, task_id)
    except Exception as exc:  # the sweep may queue a duplicate: harmless
        log.warning("could not mark task %s taken: %s", task_id, exc)
