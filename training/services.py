"""What the training app does: start sessions, post messages, generate replies, end, grade."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import access, audit
from accounts.access import Actor
from core.errors import Refused
from training import turns
from training.grading import grade_extractively, grade_with_model
from training.llm import LLMError, get_chat_model
from training.models import (
    Assignment,
    Evaluation,
    EvaluationStatus,
    Message,
    MessageRole,
    MessageStatus,
    Scenario,
    ScenarioMode,
    SessionStatus,
    TrainingSession,
)

logger = structlog.get_logger(__name__)


class TrainingError(Refused):
    """A request the training engine refuses (400 invalid, 409 conflict, 413, 429...)."""


@dataclass(frozen=True)
class PostedMessage:
    learner_message: Message
    reply: Message


# --- scenarios ------------------------------------------------------------------------


def scenarios_for(actor: Actor):  # noqa: ANN201 - a queryset
    """Scenarios the actor may start: published current versions (managers also drafts)."""
    visible = access.scope(actor, Scenario.objects.current())
    if access.is_manager(actor):
        return visible
    return visible.filter(published=True)


@transaction.atomic
def save_new_version(scenario: Scenario, *, actor: Actor) -> Scenario:
    """Editing a published scenario that sessions have used: keep the old version as it was
    and save the edit as version n+1 (rubric and knowledge scope copied)."""
    original = Scenario.objects.select_for_update().get(pk=scenario.pk)
    rubric = list(original.rubric_items.all())
    documents = list(original.knowledge_documents.all())
    Scenario.objects.filter(pk=original.pk).update(is_current=False)
    scenario.pk = None
    scenario._state.adding = True
    scenario.version = original.version + 1
    scenario.is_current = True
    scenario.family = original.family
    scenario.created_by = actor if getattr(actor, "pk", None) else None
    scenario.save()
    for item in rubric:
        item.pk = None
        item.scenario = scenario
        item.save()
    scenario.knowledge_documents.set(documents)
    return scenario


def needs_new_version(scenario: Scenario) -> bool:
    """Edits to a scenario that was published (or has been run) become a new version."""
    if not scenario.pk:
        return False
    stored = Scenario.objects.filter(pk=scenario.pk).values_list("published", flat=True).first()
    return bool(stored) or scenario.sessions.exists()


# --- sessions -------------------------------------------------------------------------


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


def access_session(actor: Actor, session_id: int) -> TrainingSession:
    """A session the actor may see (learners: their own), else Http404."""
    return access.access_or_404(
        actor, TrainingSession.objects.select_related("scenario", "learner"), pk=session_id
    )


def _check_rate(actor: Actor) -> None:
    key = f"training:rate:{actor.pk}:{int(time.time() // 60)}"
    cache.add(key, 0, 90)
    if cache.incr(key) > settings.MESSAGE_RATE_PER_MINUTE:
        raise TrainingError(
            f"You are sending messages too quickly (the limit is "
            f"{settings.MESSAGE_RATE_PER_MINUTE} a minute). Wait a moment and send it again.",
            status=429,
        )


def post_message(*, actor: Actor, session_id: int, text: str) -> PostedMessage:
    """Store the learner's message and start the reply (training.turns).

    Raises TrainingError: 400 empty, 413 too long, 409 ended or busy, 429 too fast;
    Http404 for a session that is not the actor's.
    """
    access_session(actor, session_id)  # a foreign session is "not found" before anything else
    text = (text or "").strip()
    if not text:
        raise TrainingError("Write a message first: it is empty.")
    limit = settings.MESSAGE_MAX_CHARS
    if len(text) > limit:
        raise TrainingError(
            f"The message is {len(text):,} characters; the limit is {limit:,}.", status=413
        )
    with transaction.atomic():
        session = access.access_or_404(
            actor, TrainingSession.objects.select_for_update(), pk=session_id
        )
        if session.learner_id != actor.pk:
            raise TrainingError("Only the learner of this session can write in it.", status=403)
        if session.is_active and timezone.now() >= session.expires_at:
            _end(session, "time_limit")
        if not session.is_active:
            raise TrainingError("This session has ended; start a new one to keep practising.",
                                status=409)  # fmt: skip
        if session.messages.filter(status=MessageStatus.STREAMING).exists():
            # A reply lost with its process must not block the session: finish it now.
            if not turns.finish_abandoned_replies(session_id=session.pk):
                raise TrainingError(
                    "Wait for the reply before sending another message.", status=409
                )
        _check_rate(actor)
        learner_message = Message.objects.create(
            session=session, role=MessageRole.LEARNER, text=text
        )
        reply = Message.objects.create(
            session=session,
            role=MessageRole.PERSONA if session.scenario.is_roleplay else MessageRole.TRAINER,
            status=MessageStatus.STREAMING,
        )
        transaction.on_commit(lambda: turns.launch(reply.pk))
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


def transcript_of(session: TrainingSession) -> tuple[str, list[str]]:
    lines, learner_texts = [], []
    for message in session.messages.exclude(text="").order_by("created_at", "id"):
        speaker = "LEARNER" if message.is_from_learner else message.role.upper()
        lines.append(f"{speaker}: {message.text}")
        if message.is_from_learner:
            learner_texts.append(message.text)
    return "\n".join(lines), learner_texts


def grade_session(session_id: int) -> Evaluation:
    """Grade an ended session against its scenario's rubric (idempotent)."""
    session = TrainingSession.objects.select_related("scenario").get(pk=session_id)
    evaluation, _ = Evaluation.objects.get_or_create(session=session)
    if evaluation.status == EvaluationStatus.READY:
        return evaluation
    rubric = list(session.scenario.rubric_items.all())
    transcript, learner_texts = transcript_of(session)
    model = get_chat_model(session.scenario.llm_model, session.scenario.organization_id)
    if not learner_texts:
        evaluation.status = EvaluationStatus.FAILED
        evaluation.error = "Nothing to grade: the learner did not write anything."
        evaluation.save()
        return evaluation
    try:
        if model.is_stand_in:
            grade = grade_extractively(rubric, learner_texts)
        else:
            grade = grade_with_model(model, transcript, rubric, learner_texts)
    except LLMError as exc:
        if exc.retryable:
            raise
        evaluation.status = EvaluationStatus.FAILED
        evaluation.error = str(exc)[:300]
        evaluation.save()
        return evaluation
    evaluation.overall = grade.overall
    evaluation.rubric_scores = grade.rubric_scores
    evaluation.strengths = grade.strengths
    evaluation.practise_next = grade.practise_next
    evaluation.model = model.model_id
    evaluation.status = EvaluationStatus.READY
    evaluation.completed_at = timezone.now()
    evaluation.save()
    return evaluation


def sessions_for(actor: Actor):  # noqa: ANN201 - a queryset
    return access.scope(actor, TrainingSession.objects.select_related("scenario")).filter(
        ~Q(is_preview=True) | Q(learner_id=actor.pk)
    )


SCENARIO_FIELDS = (
    "title", "summary", "mode", "difficulty", "persona_name", "persona_role",
    "persona_personality", "persona_background", "persona_hidden_motivations",
    "persona_objections", "persona_opening_line", "learner_objectives",
    "knowledge_collections", "voice", "avatar", "llm_model", "time_limit_minutes", "published",
)  # fmt: skip


def _replace_rubric(scenario: Scenario, rubric: list[dict[str, object]]) -> None:
    from training.models import RubricItem

    scenario.rubric_items.all().delete()
    for position, item in enumerate(rubric):
        RubricItem.objects.create(
            scenario=scenario,
            name=item["name"],
            good_looks_like=item["good_looks_like"],
            weight=item.get("weight", 1),
            position=position,
        )


@transaction.atomic
def create_scenario(
    *, actor: Actor, data: dict[str, object], rubric: list[dict[str, object]]
) -> Scenario:
    """A new scenario of the actor's organization (managers only)."""
    if not access.is_manager(actor) or not actor.organization_id:
        raise PermissionDenied("Only managers of an organization can author scenarios.")
    scenario = Scenario.objects.create(
        organization_id=actor.organization_id,
        created_by=actor if getattr(actor, "pk", None) else None,
        **{key: value for key, value in data.items() if key in SCENARIO_FIELDS},
    )
    _replace_rubric(scenario, rubric)
    if scenario.published:
        audit.record("scenario.published", actor=actor, target=scenario,
                     changes={"title": scenario.title, "version": scenario.version})  # fmt: skip
    return scenario


@transaction.atomic
def update_scenario(
    *,
    actor: Actor,
    scenario_id: int,
    data: dict[str, object],
    rubric: list[dict[str, object]] | None,
) -> Scenario:
    """Edit a scenario; a published or already-used one becomes version n+1."""
    if not access.is_manager(actor):
        raise PermissionDenied("Only managers can edit scenarios.")
    scenario = access.access_or_404(actor, Scenario.objects.current(), pk=scenario_id)
    was_published = scenario.published
    version_up = needs_new_version(scenario)
    for key, value in data.items():
        if key in SCENARIO_FIELDS:
            setattr(scenario, key, value)
    if version_up:
        scenario = save_new_version(scenario, actor=actor)
    else:
        scenario.save()
    if rubric is not None:
        _replace_rubric(scenario, rubric)
    if scenario.published and not was_published:
        audit.record("scenario.published", actor=actor, target=scenario,
                     changes={"title": scenario.title, "version": scenario.version})  # fmt: skip
    return scenario


@transaction.atomic
def delete_scenario(*, actor: Actor, scenario_id: int) -> None:
    """Delete a scenario (every version) that nobody has practised or been assigned.

    A scenario with sessions or assignments keeps its history: it is refused with 409,
    and unpublishing it hides it from learners instead.
    """
    if not access.is_manager(actor):
        raise PermissionDenied("Only managers can delete scenarios.")
    scenario = access.access_or_404(actor, Scenario.objects.current(), pk=scenario_id)
    family = Scenario.objects.select_for_update().filter(family=scenario.family)
    versions = list(family)  # locked until the end of the transaction
    used = (
        TrainingSession.objects.filter(scenario__family=scenario.family).exists()
        or Assignment.objects.filter(scenario__family=scenario.family).exists()
    )
    if used:
        raise TrainingError(
            "This scenario has sessions or assignments, so it is kept for their history. "
            "Unpublish it (published: false) to hide it from learners.",
            status=409,
        )
    audit.record("scenario.deleted", actor=actor, target=scenario,
                 changes={"title": scenario.title, "versions": len(versions)})  # fmt: skip
    Scenario.objects.filter(pk__in=[version.pk for version in versions]).delete()


def assignments_for(actor: Actor):  # noqa: ANN201 - a queryset
    """Managers: their organization's assignments. Learners: those for them or their teams."""
    if access.is_manager(actor):
        return access.scope(actor, Assignment.objects.select_related("scenario", "team", "learner"))
    return assignments_of(actor)


def assignments_of(actor: Actor):  # noqa: ANN201 - a queryset
    """Assignments given to this person, directly or through one of their teams."""
    if not getattr(actor, "pk", None) or not actor.organization_id:
        return Assignment.objects.none()
    return (
        Assignment.objects.filter(
            Q(learner_id=actor.pk) | Q(team__members=actor.pk),
            organization_id=actor.organization_id,
        )
        .select_related("scenario", "team", "learner")
        .distinct()
    )


@transaction.atomic
def create_assignment(
    *,
    actor: Actor,
    scenario_id: int,
    team_id: int | None = None,
    learner_id: int | None = None,
    due_at: object = None,
    attempts_required: int = 1,
    passing_score: int = 70,
) -> Assignment:
    """Assign a scenario to a team or a learner of the actor's organization (ids in the
    payload go through the access policy: a foreign id is "not found")."""
    from accounts.models import Team, User

    if not access.is_manager(actor) or not actor.organization_id:
        raise PermissionDenied("Only managers of an organization can assign training.")
    if bool(team_id) == bool(learner_id):
        raise TrainingError("Assign to a team or to a learner (exactly one of them).")
    scenario = access.access_or_404(actor, Scenario.objects.current(), pk=scenario_id)
    team = access.access_or_404(actor, Team, pk=team_id) if team_id else None
    learner = access.access_or_404(actor, User, pk=learner_id) if learner_id else None
    assignment = Assignment.objects.create(
        organization_id=actor.organization_id, scenario=scenario, team=team, learner=learner,
        due_at=due_at, attempts_required=attempts_required, passing_score=passing_score,
        created_by=actor if getattr(actor, "pk", None) else None,
    )  # fmt: skip
    audit.record("assignment.created", actor=actor, target=assignment,
                 changes={"scenario": scenario.title, "team": str(team or ""),
                          "learner": str(learner or "")})  # fmt: skip
    return assignment


ASSIGNMENT_EDITABLE = ("due_at", "attempts_required", "passing_score")


@transaction.atomic
def update_assignment(*, actor: Actor, assignment_id: int, **changes: object) -> Assignment:
    """Change an assignment's due date, attempts or passing score (managers)."""
    if not access.is_manager(actor):
        raise PermissionDenied("Only managers can change assignments.")
    assignment = access.access_or_404(
        actor, Assignment.objects.select_for_update(of=("self",)), pk=assignment_id
    )
    before = {name: getattr(assignment, name) for name in ASSIGNMENT_EDITABLE}
    for name, value in changes.items():
        if name not in ASSIGNMENT_EDITABLE:
            raise TrainingError(f"“{name}” cannot be changed; assign again instead.")
        setattr(assignment, name, value)
    assignment.save()
    after = {name: getattr(assignment, name) for name in ASSIGNMENT_EDITABLE}
    difference = audit.diff(
        {k: str(v) if v is not None else None for k, v in before.items()},
        {k: str(v) if v is not None else None for k, v in after.items()},
    )
    if difference:
        audit.record("assignment.updated", actor=actor, target=assignment, changes=difference)
    return assignment


@transaction.atomic
def delete_assignment(*, actor: Actor, assignment_id: int) -> None:
    """Withdraw an assignment; sessions already done keep their history."""
    if not access.is_manager(actor):
        raise PermissionDenied("Only managers can remove assignments.")
    assignment = access.access_or_404(actor, Assignment, pk=assignment_id)
    audit.record("assignment.deleted", actor=actor, target=assignment,
                 changes={"scenario": assignment.scenario.title,
                          "team": str(assignment.team or ""),
                          "learner": str(assignment.learner or "")})  # fmt: skip
    assignment.delete()
