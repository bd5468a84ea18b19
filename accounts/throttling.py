"""API rate limits, counted in Redis (the Django cache) so they hold across processes.

Per signed-in user, per API key, per IP for anonymous callers; stricter scopes for
sign-in and for posting messages. DRF answers 429 with a Retry-After header.

While Redis is unreachable every limit here lets requests through and logs
`rate_limit_unavailable` with its scope: a limit that cannot be counted must not turn
every API call into an error. Sign-in stays guarded by the lockout, which lives in
PostgreSQL (settings AXES_HANDLER).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from rest_framework import throttling as drf

from accounts.api_keys import ApiKeyPrincipal
from core.redis_clients import RedisUnavailable, fail_fast_cache

if TYPE_CHECKING:  # DRF imports its throttle classes while loading rest_framework.views
    from rest_framework.request import Request
    from rest_framework.views import APIView

log = structlog.get_logger(__name__)


def _warn_unavailable(scope: str | None, exc: RedisUnavailable) -> None:
    log.warning("rate_limit_unavailable", scope=scope, allowed=True, reason=str(exc))


class FailOpenRateThrottle(drf.SimpleRateThrottle):
    """A DRF throttle that allows the request, with a warning, when Redis cannot count it."""

    cache = fail_fast_cache

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisUnavailable as exc:
            _warn_unavailable(self.scope, exc)
            return True


class ApiKeyRateThrottle(FailOpenRateThrottle):
    """Requests made with one API key (users are counted by UserRateThrottle)."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.user, ApiKeyPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.api_key.prefix}


class UserRateThrottle(FailOpenRateThrottle):
    """Requests of one signed-in person."""

    scope = "user"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not request.user.is_authenticated or isinstance(request.user, ApiKeyPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonRateThrottle(FailOpenRateThrottle):
    """Requests from one IP address without credentials."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ScopedRateThrottle(FailOpenRateThrottle, drf.ScopedRateThrottle):
    """DRF's ScopedRateThrottle (the view's `throttle_scope`, per user or IP), failing open."""


class PerCallerScopedRateThrottle(ScopedRateThrottle):
    """A stricter scope (e.g. "messages") counted per person or per key."""

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        user = request.user
        if isinstance(user, ApiKeyPrincipal):
            ident = f"key-{user.api_key.prefix}"
        elif user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def hit_rate_limit(scope: str, ident: object, *, limit: int, window_seconds: int) -> bool:
    """Count one hit for (scope, ident): True while within `limit` per `window_seconds`,
    False once over it.

    Fixed windows counted in the Redis cache. Never raises for Redis: while it is
    unreachable the hit is allowed (True) and `rate_limit_unavailable` is logged.
    """
    key = f"rate:{scope}:{ident}:{int(time.time() // window_seconds)}"
    try:
        for _ in range(2):
            fail_fast_cache.add(key, 0, window_seconds + 30)
            try:
                return fail_fast_cache.incr(key) <= limit
            except ValueError:  # evicted between add and incr: add it again
                continue
        return True
    except RedisUnavailable as exc:
        _warn_unavailable(scope, exc)
        return True
