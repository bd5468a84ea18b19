"""Progress summaries for dashboards and the API: sessions, scores and assignment
completion, computed in SQL over what the caller may see (the access policy scopes the
sessions first, so a learner's summary is their own and a manager's their organization's).

An assignment is complete for a learner when they have ended at least
`attempts_required` graded sessions of the assigned scenario (any version) since it was
assigned, and their best score reaches `passing_score`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Avg, Count, Max, Q, QuerySet
from django.utils import timezone

from accounts import access
from accounts.access import Actor
from training.models import (
    Assignment,
    EvaluationStatus,
    Scenario,
    SessionStatus,
    TrainingSession,
)
from training.selectors import assignments_for, sessions_for


@dataclass(frozen=True)
class SummaryFilter:
    since: datetime | None = None
    until: datetime | None = None
    team_id: int | None = None
    scenario_id: int | None = None  # any version of this scenario's family counts


@dataclass
class Summary:
    sessions_started: int = 0
    sessions_ended: int = 0
    average_score: float | None = None
    learners_active: int = 0
    by_scenario: list[dict[str, Any]] = field(default_factory=list)
    by_learner: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _sessions(actor: Actor, filters: SummaryFilter) -> QuerySet[TrainingSession]:
    sessions = sessions_for(actor).filter(is_preview=False)
    if filters.since:
        sessions = sessions.filter(started_at__gte=filters.since)
    if filters.until:
        sessions = sessions.filter(started_at__lt=filters.until)
    if filters.team_id:
        sessions = sessions.filter(learner__teams=filters.team_id)
    if filters.scenario_id:
        sessions = sessions.filter(scenario__family__in=_family(filters.scenario_id))
    return sessions


def _family(scenario_id: int) -> QuerySet[Scenario]:
    """The family of a scenario version, as a subquery (the caller's scope applies to the
    sessions and assignments it filters, so a foreign id matches nothing)."""
    return Scenario.objects.filter(pk=scenario_id).values("family")


GRADED = Q(evaluation__status=EvaluationStatus.READY)


def summarize(actor: Actor, filters: SummaryFilter | None = None) -> Summary:
    filters = filters or SummaryFilter()
    sessions = _sessions(actor, filters)
    totals = sessions.aggregate(
        started=Count("id"),
        ended=Count("id", filter=Q(status=SessionStatus.ENDED)),
        average=Avg("evaluation__overall", filter=GRADED),
        learners=Count("learner", distinct=True),
    )
    summary = Summary(
        sessions_started=totals["started"],
        sessions_ended=totals["ended"],
        average_score=_round(totals["average"]),
        learners_active=totals["learners"],
    )
    per_scenario = list(
        sessions.values("scenario__family").annotate(
            sessions=Count("id"),
            ended=Count("id", filter=Q(status=SessionStatus.ENDED)),
            average=Avg("evaluation__overall", filter=GRADED),
            best=Max("evaluation__overall", filter=GRADED),
        )
    )
    current = {
        row["family"]: row
        for row in Scenario.objects.current()
        .filter(family__in=[row["scenario__family"] for row in per_scenario])
        .values("family", "id", "title")
    }
    summary.by_scenario = sorted(
        (
            {"scenario_id": current.get(row["scenario__family"], {}).get("id"),
             "title": current.get(row["scenario__family"], {}).get("title", ""),
             "sessions": row["sessions"], "sessions_ended": row["ended"],
             "average_score": _round(row["average"]), "best_score": row["best"]}
            for row in per_scenario
        ),
        key=lambda row: row["title"],
    )  # fmt: skip
    if access.is_manager(actor):
        per_learner = (
            sessions.values("learner_id", "learner__email", "learner__full_name")
            .annotate(
                sessions=Count("id"),
                average=Avg("evaluation__overall", filter=GRADED),
                last=Max("started_at"),
            )
            .order_by("learner__email")
        )
        summary.by_learner = [
            {"learner_id": row["learner_id"], "email": row["learner__email"],
             "name": row["learner__full_name"], "sessions": row["sessions"],
             "average_score": _round(row["average"]), "last_session_at": row["last"]}
            for row in per_learner
        ]  # fmt: skip
    summary.assignments = _assignment_progress(actor, filters)
    return summary


def _assignment_progress(actor: Actor, filters: SummaryFilter) -> list[dict[str, Any]]:
    assignments = assignments_for(actor).order_by("due_at", "pk").prefetch_related("team__members")
    if filters.team_id:
        assignments = assignments.filter(
            Q(team_id=filters.team_id) | Q(learner__teams=filters.team_id)
        )
    if filters.scenario_id:
        assignments = assignments.filter(scenario__family__in=_family(filters.scenario_id))
    now = timezone.now()
    rows = []
    for assignment in assignments.distinct()[:200]:
        learners = _assignees(actor, assignment)
        done = _completed(assignment, learners)
        rows.append({
            "assignment_id": assignment.pk,
            "scenario_title": assignment.scenario.title,
            "team": assignment.team.name if assignment.team else None,
            "learner": assignment.learner.email if assignment.learner else None,
            "due_at": assignment.due_at,
            "overdue": bool(assignment.due_at and assignment.due_at < now and done < len(learners)),
            "learners_assigned": len(learners),
            "learners_completed": done,
        })  # fmt: skip
    return rows


def _assignees(actor: Actor, assignment: Assignment) -> list[int]:
    if assignment.learner_id:
        ids = [assignment.learner_id]
    else:
        ids = [member.pk for member in assignment.team.members.all() if member.is_active]
    if not access.is_manager(actor):
        ids = [pk for pk in ids if pk == actor.pk]  # a learner's own progress only
    return ids


@dataclass(frozen=True)
class LearnerProgress:
    """One learner on one assignment: ended sessions since it was assigned, best score,
    and whether a session of it is under way now."""

    attempts: int = 0
    best: int | None = None
    under_way: bool = False

    def status(self, assignment: Assignment) -> str:
        if (
            self.attempts >= assignment.attempts_required
            and self.best is not None
            and self.best >= assignment.passing_score
        ):
            return "passed"
        return "in progress" if self.attempts or self.under_way else "not started"


def learner_progress(assignment: Assignment, learner_ids: list[int]) -> dict[int, LearnerProgress]:
    """Progress of these learners on the assignment (the one definition used by the
    dashboards and the API): ended sessions of any version of the scenario started since
    it was assigned, and the best graded score among them."""
    if not learner_ids:
        return {}
    sessions = TrainingSession.objects.filter(
        learner_id__in=learner_ids,
        scenario__family=assignment.scenario.family,
        is_preview=False,
        started_at__gte=assignment.created_at,
    )
    rows = sessions.values("learner_id").annotate(
        attempts=Count("id", filter=Q(status=SessionStatus.ENDED)),
        best=Max("evaluation__overall", filter=GRADED & Q(status=SessionStatus.ENDED)),
        under_way=Count("id", filter=Q(status=SessionStatus.ACTIVE)),
    )
    return {
        row["learner_id"]: LearnerProgress(row["attempts"], row["best"], row["under_way"] > 0)
        for row in rows
    }


def _completed(assignment: Assignment, learner_ids: list[int]) -> int:
    progress = learner_progress(assignment, learner_ids)
    return sum(1 for p in progress.values() if p.status(assignment) == "passed")
