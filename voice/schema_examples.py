"""OpenAPI examples for the voice API (checked against the schema by a test)."""

from __future__ import annotations

from accounts.schema import register_examples

register_examples({
    "VoiceTicket": {
        "ticket": "q3v9Yp1mW0-7xR2dKc8sLbN4tA6uEfGh",
        "expires_in": 60,
        "url": "/ws/sessions/41/voice/?ticket=q3v9Yp1mW0-7xR2dKc8sLbN4tA6uEfGh",
    },
})  # fmt: skip
