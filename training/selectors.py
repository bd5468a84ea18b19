"""Reads of the training app: what an actor may see (scenarios, sessions, assignments)
and what a session said. Writes are in scenarios, sessions, assignments and debriefs."""

from __future__ import annotations

from django.db.models import Q

from accounts import access
from accounts.access import Actor
from training.models import (
    Assignment,
    Scenario,
    TrainingSession,
)


def scenarios_for(actor: Actor):  # noqa: ANN201 - a queryset
    """Scenarios the actor may start: published current versions (managers also drafts)."""
    visible = access.scope(actor, Scenario.objects.current())
    if access.is_manager(actor):
        return visible
    return visible.filter(published=True)


def needs_new_version(scenario: Scenario) -> bool:
    """Edits to a scenario that was published (or has been run) become a new version."""
    if not scenario.pk:
        return False
    stored = Scenario.objects.filter(pk=scenario.pk).values_list("published", flat=True).first()
    return bool(stored) or scenario.sessions.exists()


def access_session(actor: Actor, session_id: int) -> TrainingSession:
    """A session the actor may see (learners: their own), else Http404."""
    return access.access_or_404(
        actor, TrainingSession.objects.select_related("scenario", "learner"), pk=session_id
    )


def transcript_of(session: TrainingSession) -> tuple[str, list[str]]:
    lines, learner_texts = [], []
    for message in session.messages.exclude(text="").order_by("created_at", "id"):
        speaker = "LEARNER" if message.is_from_learner else message.role.upper()
        lines.append(f"{speaker}: {message.text}")
        if message.is_from_learner:
            learner_texts.append(message.text)
    return "\n".join(lines), learner_texts


def sessions_for(actor: Actor):  # noqa: ANN201 - a queryset
    return access.scope(actor, TrainingSession.objects.select_related("scenario")).filter(
        ~Q(is_preview=True) | Q(learner_id=actor.pk)
    )


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
