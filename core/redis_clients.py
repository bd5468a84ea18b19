"""The app's own Redis clients: a pooled publisher, and the cache for callers that can do
without it.

One publisher per process and URL: publishing happens once per streamed token or progress
step, and a connection per call was measured as the engine's largest overhead.

`fail_fast_cache` is the Django cache for work that has an answer when Redis is down
(rate limits allow, idempotency refuses with 503): it raises `RedisUnavailable` instead of
Redis's own errors, and after one failure it does not ask Redis again for a few seconds,
so an unreachable Redis costs one socket timeout per process, not one per request.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.core.cache import caches
from redis.exceptions import RedisError

T = TypeVar("T")

# How long a process stops asking the cache's Redis after it failed to answer.
PAUSE_AFTER_FAILURE_SECONDS = 5.0

_failed_until: dict[str, float] = {}


class RedisUnavailable(Exception):
    """Redis did not answer, or failed moments ago and is not being asked again yet."""


@functools.lru_cache(maxsize=4)
def _pooled(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def publisher() -> redis.Redis:
    """A pooled, thread-safe client on the cache's Redis database, with our timeouts."""
    return _pooled(settings.REDIS_CACHE_URL, settings.REDIS_TIMEOUT_SECONDS)


def _cache_location() -> str:
    return str(settings.CACHES["default"].get("LOCATION", ""))


def _call(operation: Callable[..., T], *args: Any) -> T:
    location = _cache_location()
    if time.monotonic() < _failed_until.get(location, 0.0):
        raise RedisUnavailable("the cache's Redis failed moments ago; not asked again yet")
    try:
        return operation(*args)
    except RedisError as exc:
        _failed_until[location] = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
        raise RedisUnavailable(f"the cache's Redis did not answer: {type(exc).__name__}") from exc


def forget_cache_failures() -> None:
    """Ask Redis again on the next call, whatever failed before (for tests)."""
    _failed_until.clear()


class FailFastCache:
    """The default cache's operations, raising RedisUnavailable instead of Redis errors."""

    def get(self, key: str, default: Any = None) -> Any:
        return _call(caches["default"].get, key, default)

    def set(self, key: str, value: Any, timeout: float | None) -> None:
        _call(caches["default"].set, key, value, timeout)

    def add(self, key: str, value: Any, timeout: float | None) -> bool:
        return _call(caches["default"].add, key, value, timeout)

    def incr(self, key: str) -> int:
        """Raises ValueError when the key does not exist (as Django's cache does)."""
        return _call(caches["default"].incr, key)

    def delete(self, key: str) -> bool:
        return _call(caches["default"].delete, key)


fail_fast_cache = FailFastCache()
