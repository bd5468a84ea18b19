"""A circuit breaker shared by every process through the Redis cache.

Open after `threshold` failures within `window` seconds; stay open `cooldown` seconds, so
callers of a failing provider fail fast instead of each waiting for its timeout. With the
cache unreachable the breaker stays closed (calls go ahead; they have their own timeouts).
"""

from __future__ import annotations

import structlog
from django.core.cache import cache

logger = structlog.get_logger(__name__)


class CircuitBreaker:
    def __init__(
        self, name: str, *, threshold: int = 5, window: int = 60, cooldown: int = 30
    ) -> None:
        self.failures_key = f"breaker:{name}:failures"
        self.open_key = f"breaker:{name}:open"
        self.threshold, self.window, self.cooldown = threshold, window, cooldown

    def is_open(self) -> bool:
        try:
            return bool(cache.get(self.open_key))
        except Exception as exc:  # the cache's Redis is down: do not block the call
            logger.warning("breaker_state_unavailable", breaker=self.open_key, error=str(exc))
            return False

    def record_failure(self) -> None:
        try:
            cache.add(self.failures_key, 0, self.window)
            try:
                failures = cache.incr(self.failures_key)
            except ValueError:
                failures = 1
            if failures >= self.threshold:
                cache.set(self.open_key, 1, self.cooldown)
                cache.delete(self.failures_key)
        except Exception as exc:
            logger.warning("breaker_state_unavailable", breaker=self.open_key, error=str(exc))

    def record_success(self) -> None:
        try:
            cache.delete(self.failures_key)
        except Exception as exc:
            logger.warning("breaker_state_unavailable", breaker=self.open_key, error=str(exc))
