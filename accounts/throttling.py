"""API rate limits, counted in Redis (the Django cache) so they hold across processes.

Per signed-in user, per API key, per IP for anonymous callers; stricter scopes for
sign-in and for posting messages. DRF answers 429 with a Retry-After header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from accounts.api_keys import ApiKeyPrincipal

if TYPE_CHECKING:  # DRF imports its throttle classes while loading rest_framework.views
    from rest_framework.request import Request
    from rest_framework.views import APIView


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests made with one API key (users are counted by UserRateThrottle)."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.user, ApiKeyPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.api_key.prefix}


class UserRateThrottle(SimpleRateThrottle):
    """Requests of one signed-in person."""

    scope = "user"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not request.user.is_authenticated or isinstance(request.user, ApiKeyPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonRateThrottle(SimpleRateThrottle):
    """Requests from one IP address without credentials."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


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
