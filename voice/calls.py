"""The life of a voice call, as the database sees it: opened (who, which session, within
the caps), re-checked every few seconds while it lives (the account, the role, the
session, the clock, the budget), and closed (its minutes counted).

The consumer calls these through `database_sync_to_async`: a handful of queries per call
and one every VOICE_RECHECK_SECONDS, never per audio frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from training import sessions as training_sessions
from training.models import Channel, MessageStatus, SessionStatus, TrainingSession
from voice.errors import VoiceRefused
from voice.models import VoiceCall

LIVE_WITHIN = timedelta(seconds=30)  # a call not seen for this long was lost with its process


@dataclass(frozen=True)
class OpenedCall:
    call_id: int
    session_id: int
    organization_id: int
    learner_id: int
    role: str
    scenario_mode: str
    voice_id: str
    expires_at: str
    avatar: str = ""  # the scenario's face (training.models.ScenarioAvatar)
    avatar_id: str = ""  # its LiveAvatar avatar ("": LIVEAVATAR_AVATAR_ID)
    replaced: list[int] = field(default_factory=list)  # calls of this session taken over
    messages: list[dict[str, Any]] = field(default_factory=list)


def month_start() -> datetime:
    """The start of this calendar month: monthly voice and avatar budgets count from it."""
    return timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _minutes_left(organization_id: int, budget_minutes: int | None) -> float | None:
    if budget_minutes is None:
        return None
    used = (
        VoiceCall.objects.filter(
            organization_id=organization_id, started_at__gte=month_start()
        ).aggregate(total=Sum("seconds"))["total"]
        or 0
    )
    return budget_minutes - used / 60


def _transcript(session: TrainingSession) -> list[dict[str, Any]]:
    return [
        {
            "id": m.pk,
            "role": m.role,
            "text": m.text,
            "interrupted": m.interrupted,
            "status": m.status,
        }
        for m in session.messages.order_by("created_at", "id")
    ]


def open_call(*, user: User, session_id: int) -> OpenedCall:
    """Open a call on the user's own active voice session, taking over any older call of
    the same session. Raises VoiceRefused: 404 not theirs, 409 not an active voice
    session, 410 out of time, 429 too many calls, 402 the month's minutes are used."""
    with transaction.atomic():
        session = (
            TrainingSession.objects.select_related("scenario", "organization")
            .select_for_update(of=("self",))
            .filter(pk=session_id, learner_id=user.pk, organization_id=user.organization_id)
            .first()
        )
        if session is None:
            raise VoiceRefused("No such session.", status=404)
        if session.channel != Channel.VOICE:
            raise VoiceRefused("This is a text session; start a voice session to talk.", status=409)
        if session.is_active and timezone.now() >= session.expires_at:
            training_sessions.end_session(actor=None, session_id=session.pk, reason="time_limit")
            raise VoiceRefused(
                "This session's time is up; its debrief is being prepared.", status=410
            )
        if not session.is_active:
            raise VoiceRefused(
                "This session has ended; start a new one to keep practising.", status=409
            )
        now = timezone.now()
        live = VoiceCall.objects.filter(
            learner_id=user.pk, ended_at__isnull=True, last_seen_at__gte=now - LIVE_WITHIN
        )
        if live.exclude(session_id=session.pk).count() >= settings.VOICE_MAX_CALLS_PER_USER:
            raise VoiceRefused(
                f"You already have {settings.VOICE_MAX_CALLS_PER_USER} voice call(s) open in "
                "another window; end it first.",
                status=429,
            )
        left = _minutes_left(session.organization_id, session.organization.voice_minutes_per_month)
        if left is not None and left <= 0:
            raise VoiceRefused(
                "Your organization has used this month's voice minutes; a manager can raise "
                "the limit, or practise by text meanwhile.",
                status=402,
            )
        replaced = list(
            VoiceCall.objects.filter(session_id=session.pk, ended_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
        VoiceCall.objects.filter(pk__in=replaced).update(
            ended_at=now, ended_reason="continued in another window", close_code=4409
        )
        call = VoiceCall.objects.create(
            organization_id=session.organization_id, session=session, learner=user
        )
        return OpenedCall(
            call_id=call.pk,
            session_id=session.pk,
            organization_id=session.organization_id,
            learner_id=user.pk,
            role=user.role,
            scenario_mode=session.mode,
            voice_id=session.scenario.voice,
            expires_at=session.expires_at.isoformat(),
            avatar=session.scenario.avatar,
            avatar_id=session.scenario.avatar_id,
            replaced=replaced,
            messages=_transcript(session),
        )


def check_call(opened: OpenedCall, *, seconds: float) -> None:
    """Re-check a live call (and record its minutes so far). Raises VoiceRefused when it
    must close: 403 account deactivated, role or organization changed; 409 replaced or
    session ended; 410 the session's time is up; 402 the month's minutes are used."""
    now = timezone.now()
    call = VoiceCall.objects.select_related("learner", "session", "organization").get(
        pk=opened.call_id
    )
    if call.ended_at is not None:
        raise VoiceRefused(call.ended_reason or "This call was closed.", status=409)
    VoiceCall.objects.filter(pk=call.pk).update(last_seen_at=now, seconds=seconds)
    user = call.learner
    if not user.is_active:
        raise VoiceRefused("Your account was deactivated.", status=403)
    if user.role != opened.role or user.organization_id != opened.organization_id:
        raise VoiceRefused("Your role changed; reload the page to continue.", status=403)
    session = call.session
    if session.status != SessionStatus.ACTIVE:
        raise VoiceRefused("This session has ended.", status=409, code="session_ended")
    if (
        now >= session.expires_at
        and not session.messages.filter(status=MessageStatus.STREAMING).exists()
    ):
        training_sessions.end_session(actor=None, session_id=session.pk, reason="time_limit")
        raise VoiceRefused("The session's time is up; your debrief is being prepared.", status=410)
    left = _minutes_left(call.organization_id, call.organization.voice_minutes_per_month)
    if left is not None and left <= 0:
        raise VoiceRefused("Your organization has used this month's voice minutes.", status=402)


def close_call(call_id: int, *, seconds: float, close_code: int, reason: str) -> None:
    """Record the call's end and minutes (a call already closed keeps its first reason)."""
    VoiceCall.objects.filter(pk=call_id, ended_at__isnull=True).update(
        ended_at=timezone.now(), close_code=close_code, ended_reason=reason[:200]
    )
    VoiceCall.objects.filter(pk=call_id).update(seconds=seconds)


def transcript(session_id: int) -> list[dict[str, Any]]:
    return _transcript(TrainingSession.objects.get(pk=session_id))
