"""The shared cache: its backend, and how the boot path lives without it.

Django's Redis backend builds a `redis.Redis` for every operation, which on this project's machines cost as much as
the round trip itself (a boot request makes one). A client is thread-safe and only wraps its pool, so one per pool
serves every operation of the process.

The shared cache only ever makes answers faster: every use of it goes through `shared`, which answers a fallback
when Redis is down, unreachable or slower than its socket timeout, so the boot path answers from the database
(slower, right). An outage is counted (`dock2box_shared_cache_errors_total`) and logged once, when it starts and when
it ends; while it lasts the cache is asked again at most once per `DOCK2BOX_CACHE_RETRY` seconds, so a host does not
wait for a socket timeout per request. When it is back, the `on_recovery` hooks run (the data generation moves: what
the cache kept from before, and the changes it could not be told of, are stale).
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from prometheus_client import Counter
from redis.exceptions import RedisError

T = TypeVar("T")
logger = logging.getLogger("dock2box.cache")
CACHE_ERRORS = Counter(
    "dock2box_shared_cache_errors",
    "Shared cache operations that failed or were skipped during an outage",
    ["operation"],
)
_state = threading.Lock()
_down: dict[str, float] = {}  # "since" and "retry_at" (monotonic seconds) while an outage lasts
_recovery_hooks: list[Callable[[], None]] = []


def on_recovery(hook: Callable[[], None]) -> None:
    """Call `hook` once each time this process finds the shared cache back after an outage."""
    _recovery_hooks.append(hook)


def shared(operation: str, call: Callable[[], T], fallback: T) -> T:
    """`call()` on the shared cache, or `fallback` while it is down (see the module's note)."""
    if _down and time.monotonic() < _down["retry_at"]:
        CACHE_ERRORS.labels(operation).inc()
        return fallback
    try:
        result = call()
    except (RedisError, OSError) as error:
        CACHE_ERRORS.labels(operation).inc()
        with _state:
            now = time.monotonic()
            if not _down:
                logger.warning("shared cache down (%s: %s): answering from the database", operation, error)
                _down["since"] = now
            _down["retry_at"] = now + settings.DOCK2BOX_CACHE_RETRY
        return fallback
    if _down:
        with _state:
            since = _down.pop("since", None)
            _down.clear()
        if since is not None:
            logger.warning("shared cache back after %.1f s", time.monotonic() - since)
            for hook in _recovery_hooks:
                shared("recovery", hook, None)
    return result


class _ClientPerPool(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class SharedRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ClientPerPool
