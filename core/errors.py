"""One way to refuse: `Refused(message, code=, status=)`, raised by every service.

It is mapped once for each surface: to the API's error shape (core.api_errors), to a
page's message (`page_response`, used by the pages' middleware), and to a WebSocket close
code (`close_code`: 4000 + the HTTP status, e.g. 4409). Django's own PermissionDenied and
ValidationError raised by services are read through `as_refused`, keeping their message,
and so are Django's refusals of a request body (too large, too many fields, malformed).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
    ValidationError,
)
from django.http import Http404
from django.http.multipartparser import MultiPartParserError

CODES = {400: "invalid", 403: "permission_denied", 404: "not_found", 409: "conflict",
         413: "too_large", 415: "unsupported", 429: "rate_limited", 503: "unavailable"}  # fmt: skip


class Refused(Exception):
    """An operation a service refuses: a sentence a person understands, a machine-readable
    code, and the HTTP status that says what kind of refusal it is."""

    status = 400
    code = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code = code or self.code or CODES.get(self.status, "refused")
        self.fields = fields or {}

    @property
    def close_code(self) -> int:
        """The WebSocket close code for this refusal (4000-4999 are the application's)."""
        return 4000 + self.status if 400 <= self.status < 1000 else 4000


def as_refused(exc: BaseException) -> Refused | None:
    """The refusal an exception stands for, or None for one that is not a refusal."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, PermissionDenied):
        message = str(exc) or "You do not have permission to do that."
        return Refused(message, status=403)
    if isinstance(exc, Http404):
        return Refused("Not found.", status=404)
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            fields = {name: [str(m) for m in errors] for name, errors in exc.message_dict.items()}
            general = fields.pop("__all__", None)
            message = " ".join(general) if general else "Some fields are not valid; see fields."
            return Refused(message, status=400, fields=fields)
        return Refused(" ".join(exc.messages), status=400)
    return _unreadable_request(exc)


def _unreadable_request(exc: BaseException) -> Refused | None:
    """Django's refusals of a request body it cannot or will not read, as refusals."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is too large: the limit is {limit:,} bytes."
        return Refused(message, status=413, code="request_too_large")
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        message = f"The request has too many form fields: the limit is {limit:,}."
        return Refused(message, status=400, code="too_many_fields")
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        message = f"The request has too many files: the limit is {limit:,}."
        return Refused(message, status=400, code="too_many_fields")
    if isinstance(exc, MultiPartParserError):
        message = f"The multipart form could not be read: {exc}"
        return Refused(message, status=400, code="parse_error")
    if isinstance(exc, BadRequest | SuspiciousOperation):
        return Refused("The request could not be read.", status=400, code="bad_request")
    return None
