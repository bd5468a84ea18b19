"""Error pages: API paths get the one JSON error shape, pages get Django's templates."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from core.api_errors import error_body, refused_body
from core.errors import Refused, as_refused


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 (a body it cannot read, too many fields, a bad Host header...)."""
    if request.path.startswith("/api/"):
        refused = (exception and as_refused(exception)) or Refused(
            "The request could not be read.", code="bad_request"
        )
        return JsonResponse(refused_body(refused), status=refused.status)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        refused = (exception and as_refused(exception)) or Refused(
            "You do not have permission to do that.", status=403
        )
        return JsonResponse(refused_body(refused), status=refused.status)
    return defaults.permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        message = "Something went wrong on our side; it has been logged. Please try again."
        return JsonResponse(error_body("server_error", message), status=500)
    return defaults.server_error(request)
