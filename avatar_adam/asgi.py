"""ASGI entry point: HTTP through Django, WebSockets through Channels (origin-checked)."""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avatar_adam.settings")
try:
    django_asgi_app = get_asgi_application()
except ImproperlyConfigured as exc:  # a missing or malformed setting: one clear line
    raise SystemExit(f"AvatarAdam cannot start: {exc}") from None

from accounts.encryption import verify_keys_or_exit

verify_keys_or_exit()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from avatar_adam.daphne_requests import leave_request_bodies_to_django  # noqa: E402
from avatar_adam.websocket_urls import websocket_urlpatterns  # noqa: E402
from core.websocket import OriginPolicy  # noqa: E402
from voice.warmup import warm_up_in_background  # noqa: E402

warm_up_in_background()
leave_request_bodies_to_django()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginPolicy(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# What start-up created (modules, settings, URL patterns: a few hundred thousand objects)
# lives as long as the process: keep it out of the cyclic collector's full passes, which
# otherwise paused the event loop ~100 ms each (measured with 20 voice calls), long enough
# to delay reply audio. The usual recipe for long-lived Python servers.
gc.freeze()
