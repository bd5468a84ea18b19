"""Project-wide HTTP middleware: request-size limits, the X-Request-ID header, and a clear
503 (not a 500) when Redis stops answering in the middle of a request."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from avatar_adam.body_limits import body_limit, too_large_message
from core.api_errors import error_body
from core.redis_clients import RedisUnavailable

log = structlog.get_logger(__name__)

REDIS_DOWN_MESSAGE = (
    "This part of AvatarAdam is briefly unavailable: a service it needs is not answering. "
    "Please try again in a minute."
)
REDIS_DOWN_RETRY_AFTER_SECONDS = 30

Handler = Callable[[HttpRequest], HttpResponse]


def _too_large(request: HttpRequest, limit: int, size: int | None = None) -> HttpResponse:
    message = too_large_message(request.path_info, limit, size)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("request_too_large", message), status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    """Refuse oversized bodies with 413 by their declared length.

    The limits are avatar_adam.body_limits': REQUEST_BODY_MAX_BYTES for the addresses that
    take document uploads, DATA_UPLOAD_MAX_MEMORY_SIZE for any other. Under Daphne the
    request has already passed the same check before its body was read
    (avatar_adam.daphne_requests); this one holds for servers that read the body first.
    Bodies without a Content-Length are still capped by Django's own limit, which raises
    RequestDataTooBig and is answered with 413 here.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length:
            limit = body_limit(request.path_info)
            if length > limit:
                return _too_large(request, limit, length)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return _too_large(request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return None


class RequestIdHeaderMiddleware:
    """Return the request id that every log line of this request carries."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            response["X-Request-ID"] = request_id
        return response


class RedisUnavailableMiddleware:
    """Answer 503 with a message a person understands when Redis stops answering mid-request.

    Reads, pages and sign-in do not need Redis (rate limits fail open, sessions and the
    lockout live in PostgreSQL); what does (reply streams, the message rate limit, the
    retrieval cache) gets this answer instead of a 500. Redis's own protocol errors are
    bugs, not outages, and still surface as 500s.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RedisConnectionError | RedisTimeoutError | RedisUnavailable):
            return None
        log.warning(
            "redis_unavailable",
            path=request.path,
            error=type(exception).__name__,
            reason=str(exception)[:200],
        )
        response: HttpResponse
        if request.path.startswith("/api/"):
            body = error_body("service_unavailable", REDIS_DOWN_MESSAGE)
            response = JsonResponse(body, status=503)
        else:
            response = HttpResponse(
                REDIS_DOWN_MESSAGE, status=503, content_type="text/plain; charset=utf-8"
            )
        response["Retry-After"] = str(REDIS_DOWN_RETRY_AFTER_SECONDS)
        return response


class HtmxSignInRedirectMiddleware:
    """A page's HTMX request whose answer is "sign in first" (an expired session, or a
    second factor still to enter) makes the whole page go there (`HX-Redirect`), instead
    of the browser following the redirect inside the request and HTMX swapping the sign-in
    page into a corner of the current one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not getattr(request, "htmx", False) or response.status_code not in REDIRECTS:
            return response
        location = response.get("Location", "")
        if urlsplit(location).path in _sign_in_paths():
            return HttpResponseClientRedirect(location)
        return response


REDIRECTS = {301, 302, 303, 307, 308}


def _sign_in_paths() -> set[str]:
    return {resolve_url(settings.LOGIN_URL), reverse("two-factor-verify")}
