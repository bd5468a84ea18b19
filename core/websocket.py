"""WebSocket origin policy: a browser's socket must come from one of our hosts.

Channels' AllowedHostsOriginValidator refuses every socket without an `Origin` header,
which shuts out non-browser API clients. Browsers always send `Origin`, and cross-site
WebSocket hijacking needs a browser (it rides the cookie), so: an `Origin` that is not
one of ALLOWED_HOSTS is refused at the handshake (HTTP 403); a socket without one passes
with `scope["origin_present"] = False`, and consumers must then accept only credentials
a browser would not send on its own (a voice ticket), never the session cookie.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier


class OriginPolicy:
    def __init__(self, application: Any) -> None:
        self.application = application
        self.validator = AllowedHostsOriginValidator(application)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
        scope = dict(scope, origin_present=bool(origins))
        if not origins:
            return await self.application(scope, receive, send)
        return await self.validator(scope, receive, send)


__all__ = ["OriginPolicy", "WebsocketDenier"]
