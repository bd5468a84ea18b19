"""Sessions: start one, post the learner's message (its reply is a turn, training.turns),
end it (by the learner, the persona, or the clock), queue its debrief."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts import access
from accounts.access import Actor
from accounts.throttling import hit_rate_limit
from training import turns
from training.errors import TrainingError
from training.models import (
    Evaluation,
    Message,
    MessageRole,
    MessageStatus,
    ScenarioMode,
    SessionStatus,
    TrainingSession,
)
from training.selectors import scenarios_for

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PostedMessage:
    learner_message: Message
    reply: Message


def start_session(
    *, actor: Actor, scenario_id: int, channel: str = "text", preview: bool = False
) -> TrainingSession:
    """Start a session on the current version of a scenario the actor can see.

    Role-play sessions open with the persona's authored opening line. Raises Http404 for
    scenarios the actor may not start.
    """
    scenario = access.access_or_404(actor, scenarios_for(actor), pk=scenario_id)
    if not scenario.published and not preview:
        raise TrainingError("This scenario is not published yet; managers can preview it.")
    if not getattr(actor, "pk", None):
        raise PermissionDenied("Sessions belong to a person; API keys cannot start them.")
    with transaction.atomic():
        session = TrainingSession.objects.create(
            organization_id=scenario.organization_id,
            learner_id=actor.pk,
            scenario=scenario,
            mode=scenario.mode,
            channel=channel,
            is_preview=preview,
        )
        if scenario.mode == ScenarioMode.ROLEPLAY and scenario.persona_opening_line:
            Message.objects.create(
                session=session,
                role=MessageRole.PERSONA,
                text=scenario.persona_opening_line,
                model="scenario",
            )
    return session


def _check_rate(actor: Actor) -> None:
    # With the cache's Redis down the limit lets messages through (and logs it).
    if not hit_rate_limit(
        "messages", actor.pk, limit=settings.MESSAGE_RATE_PER_MINUTE, window_seconds=60
    ):
        raise TrainingError(
            f"You are sending messages too quickly (the limit is "
            f"{settings.MESSAGE_RATE_PER_MINUTE} a minute). Wait a moment and send it again.",
            status=429,
        )


def post_message(*, actor: Actor, session_id: int, text: object) -> PostedMessage:
    """Store the learner's message and start the reply (training.turns).

    The session is looked up once, locked. Raises Http404 for a session that is not the
    actor's (before anything else), TrainingError: 400 empty or not text, 413 too long,
    403 not the learner, 409 ended or busy, 429 too fast.
    """
    with transaction.atomic():
        posted = _store_turn(actor, session_id, text, voice=None)
        transaction.on_commit(lambda: turns.launch(posted.reply.pk))
    return posted


def post_voice_turn(
    *,
    actor: Actor,
    session_id: int,
    text: str,
    voice: dict[str, object],
    ids: tuple[int, int] | None = None,
) -> PostedMessage:
    """Store a spoken turn (its transcript and speech figures) and the pending reply,
    which the caller (the voice pipeline) generates itself with `turns.stream_reply`;
    under `ids` (the turn's and the reply's) when its draft reserved them. Refuses as
    `post_message` does."""
    with transaction.atomic():
        return _store_turn(actor, session_id, text, voice=voice, ids=ids)


def _store_turn(
    actor: Actor,
    session_id: int,
    text: object,
    *,
    voice: dict[str, object] | None,
    ids: tuple[int, int] | None = None,
) -> PostedMessage:
    session = access.access_or_404(
        actor,
        TrainingSession.objects.select_related("scenario").select_for_update(of=("self",)),
        pk=session_id,
    )
    if text is not None and not isinstance(text, str):
        raise TrainingError("The message must be text.")
    text = (text or "").strip()
    if not text:
        raise TrainingError("Write a message first: it is empty.")
    limit = settings.MESSAGE_MAX_CHARS
    if len(text) > limit:
        raise TrainingError(
            f"The message is {len(text):,} characters; the limit is {limit:,}.", status=413
        )
    if session.learner_id != actor.pk:
        raise TrainingError("Only the learner of this session can write in it.", status=403)
    if session.is_active and timezone.now() >= session.expires_at:
        _end(session, "time_limit")
    if not session.is_active:
        raise TrainingError("This session has ended; start a new one to keep practising.",
                            status=409)  # fmt: skip
    busy = session.messages.filter(status=MessageStatus.STREAMING).exists()
    # A reply lost with its process must not block the session: finish it now.
    if busy and not turns.finish_abandoned_replies(session_id=session.pk):
        raise TrainingError("Wait for the reply before sending another message.", status=409)
    _check_rate(actor)
    learner_id, reply_id = ids or (None, None)
    learner_message = Message.objects.create(
        pk=learner_id, session=session, role=MessageRole.LEARNER, text=text, voice=voice or {}
    )
    reply = Message.objects.create(
        pk=reply_id,
        session=session,
        role=MessageRole.PERSONA if session.scenario.is_roleplay else MessageRole.TRAINER,
        status=MessageStatus.STREAMING,
    )
    return PostedMessage(learner_message, reply)


def _end(session: TrainingSession, reason: str) -> None:
    session.status = SessionStatus.ENDED
    session.ended_at = timezone.now()
    session.ended_reason = reason
    session.save(update_fields=["status", "ended_at", "ended_reason"])
    Evaluation.objects.get_or_create(session=session)
    from training.tasks import grade_session_task

    session_id = session.pk
    transaction.on_commit(lambda: grade_session_task.delay(session_id))


def end_session(
    *, actor: Actor | None, session_id: int, reason: str = "learner_ended"
) -> TrainingSession:
    """End a session (idempotent) and queue its debrief. `actor=None` is the system itself."""
    with transaction.atomic():
        queryset = TrainingSession.objects.select_for_update()
        if actor is None:
            session = queryset.get(pk=session_id)
        else:
            session = access.access_or_404(actor, queryset, pk=session_id)
            if session.learner_id != actor.pk and not access.is_manager(actor):
                raise TrainingError("Only the learner can end this session.", status=403)
        if session.is_active:
            _end(session, reason)
    return session


def end_if_expired(session: TrainingSession) -> TrainingSession:
    """The session, ended first if it is past its time limit with no reply pending (what
    the beat job does every minute, done now for the page that shows it)."""
    if (
        session.is_active
        and timezone.now() >= session.expires_at
        and not session.messages.filter(status=MessageStatus.STREAMING).exists()
    ):
        end_session(actor=None, session_id=session.pk, reason="time_limit")
        session.refresh_from_db()
    return session


def end_expired_sessions() -> int:
    """End every active session past its time limit (run by Celery beat). A session
    waiting for a reply is left alone: the clock never runs out on a pending reply."""
    count = 0
    for session_id in (
        TrainingSession.objects.filter(status=SessionStatus.ACTIVE, expires_at__lte=timezone.now())
        .exclude(messages__status=MessageStatus.STREAMING)
        .values_list("pk", flat=True)
    ):
        end_session(actor=None, session_id=session_id, reason="time_limit")
        count += 1
    return count
