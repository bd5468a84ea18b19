"""Endpoints an organization may point the platform at (its own AI provider).

The server calls these URLs with the organization's key, so an unchecked URL would let an
organization admin make the server call its own network: the metadata service of the
cloud, a database port, an admin interface on localhost. Only https URLs whose host
resolves to public addresses are accepted, checked when saved and again before each use.
`PROVIDER_ENDPOINTS_ALLOW_PRIVATE` (off unless DEBUG) allows private addresses and http,
for a model server on the company's own network.

Not covered: a DNS answer that changes between our check and the client's own lookup
(rebinding); the check narrows the window, an egress firewall closes it.
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

RESOLVE_TIMEOUT_SECONDS = 3.0


_resolver = ThreadPoolExecutor(max_workers=2, thread_name_prefix="endpoint-dns")


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    # getaddrinfo has no timeout of its own: wait for it in a worker thread, bounded.
    lookup = _resolver.submit(socket.getaddrinfo, host, None)
    try:
        infos = lookup.result(timeout=RESOLVE_TIMEOUT_SECONDS)
    except (OSError, UnicodeError, FutureTimeout):
        raise ValidationError(f"The endpoint's host “{host}” cannot be resolved.") from None
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def check_provider_endpoint(url: str) -> None:
    """Raise ValidationError (a sentence for the admin) unless `url` may be called."""
    allow_private = settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE
    parts = urlsplit(url or "")
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise ValidationError("The endpoint must be an https:// URL.")
    if not parts.hostname:
        raise ValidationError("The endpoint needs a host name.")
    if parts.username or parts.password:
        raise ValidationError("Put the key in the API key field, not in the URL.")
    if allow_private:
        return
    for address in _addresses(parts.hostname):
        if not address.is_global or address.is_multicast:
            raise ValidationError(
                f"The endpoint's host resolves to {address}, a private or reserved address; "
                "the platform only calls public endpoints."
            )
