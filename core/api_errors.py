"""One error shape for every API error: {"error": {"code", "message", "fields", "request_id"}}."""

from __future__ import annotations

from typing import Any

import structlog
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import Refused, as_refused


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "fields": fields or {},
            "request_id": structlog.contextvars.get_contextvars().get("request_id"),
        }
    }


def refused_body(refused: Refused) -> dict[str, Any]:
    return error_body(refused.code, refused.message, refused.fields)


def _flatten(detail: Any) -> Any:
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    return str(detail)


def error_response_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler that renders every error in our one shape."""
    # Services' refusals and Django's refusals of an unreadable body (core.errors.as_refused).
    refused = None if isinstance(exc, exceptions.APIException | Http404) else as_refused(exc)
    if refused is not None:
        return Response(refused_body(refused), status=refused.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    detail = exc.detail
    if isinstance(detail, dict) and "detail" not in detail:
        fields = _flatten(detail)
        code = "invalid"
        message = "Some fields are not valid; see fields."
        non_field = fields.pop("non_field_errors", None)
        if non_field:
            message = " ".join(non_field)
    elif isinstance(detail, list):
        fields = {}
        code = "invalid"
        message = " ".join(str(item) for item in detail)
    else:
        fields = {}
        inner = detail.get("detail") if isinstance(detail, dict) else detail
        code = getattr(inner, "code", None) or exc.default_code
        if isinstance(detail, dict) and detail.get("code"):
            code = str(detail["code"])
        message = str(inner)
    response.data = error_body(str(code), message, fields)
    return response
