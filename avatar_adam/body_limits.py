"""How large a request body may be, by address.

One rule for both places that apply it: Daphne's request (avatar_adam.daphne_requests),
which refuses before the body is read, and RequestBodyLimitMiddleware, for servers that
hand Django a body already read (the test client, runserver).
"""

from __future__ import annotations

from django.conf import settings
from django.urls import Resolver404, resolve

# The addresses that take document uploads; every other one takes a small body.
UPLOAD_VIEWS = frozenset(
    {"api-document-list", "knowledge:upload", "admin:knowledge_document_upload"}
)
MB = 1024 * 1024


def takes_uploads(path: str) -> bool:
    try:
        return resolve(path).view_name in UPLOAD_VIEWS
    except Resolver404:
        return False


def body_limit(path: str) -> int:
    """REQUEST_BODY_MAX_BYTES for an upload address, else DATA_UPLOAD_MAX_MEMORY_SIZE."""
    if takes_uploads(path):
        return settings.REQUEST_BODY_MAX_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _size(count: int) -> str:
    if count >= MB:
        return f"{count / MB:.3g} MB"
    return f"{count / 1024:.3g} KB"


def too_large_message(path: str, limit: int, size: int | None = None) -> str:
    """The sentence of a 413: the limit, and for an upload address the document limit."""
    said = f" ({size:,} bytes)" if size is not None else ""
    message = (
        f"The request body is too large{said}: the limit here is {limit:,} bytes ({_size(limit)})."
    )
    if takes_uploads(path):
        documents = settings.DOCUMENT_MAX_BYTES
        message += f" A document may be up to {_size(documents)}."
    return message
