"""The shared cache's backend: Django's Redis cache with one client per connection pool.

Django's Redis backend builds a `redis.Redis` for every operation, which on this project's machines cost as much as
the round trip itself (a boot request makes one). A client is thread-safe and only wraps its pool, so one per pool
serves every operation of the process.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class _ClientPerPool(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class SharedRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ClientPerPool
