"""Single-use, short-lived tickets that let API clients open a voice socket.

A browser cannot put a JWT in a WebSocket's headers, and credentials in a query string end
up in server logs: a ticket is worthless once used (GETDEL) or after VOICE_TICKET_SECONDS.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from accounts.access import Actor
from core.redis_clients import publisher
from training.selectors import access_session
from voice.errors import VoiceRefused

_PREFIX = "voice-ticket:"


@dataclass(frozen=True)
class Ticket:
    value: str
    expires_in: int


@dataclass(frozen=True)
class Redeemed:
    user_id: int
    session_id: int


def issue_ticket(*, actor: Actor, session_id: int) -> Ticket:
    """A ticket for the actor's own session. Raises Http404 for a session that is not
    theirs, VoiceRefused 409 for one that is not an active voice session."""
    session = access_session(actor, session_id)
    if session.learner_id != actor.pk:
        raise VoiceRefused("Only the learner of this session can talk in it.", status=403)
    if session.channel != "voice":
        raise VoiceRefused("This is a text session; start a voice session to talk.", status=409)
    if not session.is_active:
        raise VoiceRefused("This session has ended.", status=409)
    value = secrets.token_urlsafe(32)
    payload = json.dumps({"user_id": actor.pk, "session_id": session.pk})
    try:
        publisher().set(_PREFIX + value, payload, ex=settings.VOICE_TICKET_SECONDS)
    except RedisError:
        raise VoiceRefused(
            "Voice is unavailable for a moment (the server's cache is down); try again.",
            status=503,
        ) from None
    return Ticket(value, settings.VOICE_TICKET_SECONDS)


def redeem_ticket(value: str) -> Redeemed | None:
    """The ticket's owner and session, once: None for unknown, used or expired tickets."""
    if not value or len(value) > 100:
        return None
    try:
        raw = publisher().getdel(_PREFIX + value)
    except RedisError:
        return None
    if raw is None:
        return None
    data = json.loads(raw)
    return Redeemed(int(data["user_id"]), int(data["session_id"]))
