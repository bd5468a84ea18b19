"""django-axes hooks: which account a login attempt is for, and what a locked-out user sees.

The failure counts live in PostgreSQL (settings AXES_HANDLER), so sign-in works and the
lockout still holds while Redis is down.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.api_errors import error_body

LOCKED_OUT_MESSAGE = (
    "Too many failed sign-in attempts. Sign-in is blocked for {minutes} minutes; "
    "try again later or reset your password."
)


def username_from_request(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The email a sign-in attempt names, from credentials, a form or a JSON body."""
    credentials = credentials or {}
    value = credentials.get("email") or credentials.get("username")
    if not value and request is not None:
        value = request.POST.get("username") or request.POST.get("email")
        if not value and request.content_type == "application/json":
            try:
                body = json.loads(request.body or b"{}")
            except (ValueError, UnicodeDecodeError, RecursionError):  # nested too deeply
                body = {}
            if isinstance(body, dict):
                value = body.get("email") or body.get("username")
    return str(value or "").strip().lower()


def lockout_response(request: HttpRequest, *args: Any) -> HttpResponse:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = LOCKED_OUT_MESSAGE.format(minutes=minutes)
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(error_body("locked_out", message), status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = retry_after
    return response


def reset_after_sign_in(email: str) -> None:
    """Clear the failure counts of a completed sign-in (password and any second factor)."""
    from axes.utils import reset

    # The account's count only: clearing the IP's count too would let someone who signs
    # in to their own account now and then keep guessing other people's passwords.
    reset(username=email)
