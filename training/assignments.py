"""Assigning training: to a team or a learner of the manager's organization."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from accounts import access, audit
from accounts.access import Actor
from training.errors import TrainingError
from training.models import (
    Assignment,
    Scenario,
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
    from training.tasks import notify_new_assignment

    # robust: a broker that is down costs the email, never the assignment.
    transaction.on_commit(lambda: notify_new_assignment.delay(assignment.pk), robust=True)
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
