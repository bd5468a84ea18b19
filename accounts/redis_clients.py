"""The app's own pooled Redis client (reply streams, progress events), beside the cache.

One client per process and URL: publishing happens once per streamed token or progress
step, and a connection per call was measured as the engine's largest overhead.
"""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.lru_cache(maxsize=4)
def _pooled(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def publisher() -> redis.Redis:
    """A pooled, thread-safe client on the cache's Redis database, with our timeouts."""
    return _pooled(settings.REDIS_CACHE_URL, settings.REDIS_TIMEOUT_SECONDS)
