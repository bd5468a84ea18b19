"""Daphne passes request bodies to Django unread.

Twisted's HTTP request, under Daphne's, parses multipart and urlencoded POST bodies into
`request.args` on its own, which Daphne never reads: a malformed multipart body got a bare
400 with no body before Django saw it (so never the API's error shape), and every upload
was held in memory twice. Django parses bodies itself, with its limits and our errors.
"""

from __future__ import annotations

from typing import Any

from daphne import http_protocol


class DjangoParsedWebRequest(http_protocol.WebRequest):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)


def leave_request_bodies_to_django() -> None:
    """Make Daphne's protocol build requests that do not parse their bodies (idempotent)."""
    # HTTPFactory.buildProtocol reads this module global for every connection.
    http_protocol.WebRequest = DjangoParsedWebRequest
