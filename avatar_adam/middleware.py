"""Project-wide HTTP middleware: request-size limits and the X-Request-ID header."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.api_errors import error_body

Handler = Callable[[HttpRequest], HttpResponse]


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    message = f"The request body is too large: the limit is {limit:,} bytes."
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("request_too_large", message), status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    """Refuse oversized bodies with 413 before reading them.

    Multipart uploads may be up to REQUEST_BODY_MAX_BYTES; any other body (JSON, forms)
    up to DATA_UPLOAD_MAX_MEMORY_SIZE. Bodies without a Content-Length are still capped
    by Django's own limit, which raises RequestDataTooBig and is answered with 413 here.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        content_type = request.META.get("CONTENT_TYPE", "")
        limit = (
            settings.REQUEST_BODY_MAX_BYTES
            if content_type.startswith("multipart/form-data")
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        if length > limit:
            return _too_large(request, limit)
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
