"""Pages: a refusal (core.errors.Refused, or Django's PermissionDenied with its message)
becomes a response that says why, with the refusal's status.

A page navigation gets a page; an HTMX or script request gets the sentence as plain text,
which the page's scripts show where the action was. The API has its own mapping in its
exception handler (the same refusal, in the API's error shape).
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.errors import Refused, as_refused


class RefusalMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if request.path.startswith("/api/") or not isinstance(exc, Refused | PermissionDenied):
            return None
        return page_response(request, as_refused(exc))


def page_response(request: HttpRequest, refused: Refused | None) -> HttpResponse:
    assert refused is not None
    wants_page = "text/html" in request.headers.get("Accept", "") and not request.headers.get(
        "HX-Request"
    )
    if not wants_page:
        return HttpResponse(refused.message, status=refused.status, content_type="text/plain")
    return render(request, "refused.html", {"refused": refused}, status=refused.status)
