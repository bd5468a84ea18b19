"""WebSocket routes of every app."""

from __future__ import annotations

from typing import Any

from django.urls import path

from voice.consumers import VoiceConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/sessions/<int:session_id>/voice/", VoiceConsumer.as_asgi()),
]
