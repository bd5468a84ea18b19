"""Telling learners about their assignments: a new one, one due within
ASSIGNMENT_DUE_SOON_HOURS, one overdue. Each (assignment, learner, kind) is recorded
once (AssignmentReminder), so the hourly job can run any number of times; a learner gets
at most one email a day (ASSIGNMENT_EMAILS_PER_DAY), and the home page shows the rest.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from training import analytics
from training.models import Assignment, AssignmentReminder, ReminderKind

logger = structlog.get_logger(__name__)

SUBJECTS = {
    ReminderKind.ASSIGNED: "New training for you: {title}",
    ReminderKind.DUE_SOON: "Due soon: {title}",
    ReminderKind.OVERDUE: "Overdue: {title}",
}


def _learners(assignment: Assignment) -> list[object]:
    from accounts.models import User

    people = User.objects.filter(is_active=True, organization_id=assignment.organization_id)
    if assignment.learner_id:
        return list(people.filter(pk=assignment.learner_id))
    return list(people.filter(teams=assignment.team_id))


def _body(assignment: Assignment, kind: str) -> str:
    title = assignment.scenario.title
    due = (
        f" It is due {timezone.localtime(assignment.due_at):%A %d %B, %H:%M}."
        if assignment.due_at
        else ""
    )
    lead = {
        ReminderKind.ASSIGNED: f"You have been assigned “{title}”.{due}",
        ReminderKind.DUE_SOON: f"“{title}” is due soon and is not passed yet.{due}",
        ReminderKind.OVERDUE: f"“{title}” was due and is not passed yet.{due}",
    }[kind]
    return (
        f"{lead}\n\nPractise it from your home page: "
        f"{settings.SITE_URL.rstrip('/')}{reverse('home')}\n\n"
        "You get at most one email a day about your assignments.\n"
    )


def _remind(assignment: Assignment, learner: object, kind: str) -> bool:
    """Record the reminder (once) and email it unless the learner had an email today.
    True when it was new."""
    today = timezone.now() - timedelta(days=1)
    with transaction.atomic():
        emailed_today = AssignmentReminder.objects.filter(
            learner=learner, emailed=True, created_at__gte=today
        ).count()
        email = emailed_today < settings.ASSIGNMENT_EMAILS_PER_DAY
        try:
            with transaction.atomic():
                AssignmentReminder.objects.create(
                    assignment=assignment, learner=learner, kind=kind, emailed=email
                )
        except IntegrityError:
            return False  # sent before: never twice
    if email:
        subject = SUBJECTS[kind].format(title=assignment.scenario.title)[:150]
        try:
            send_mail(subject, _body(assignment, kind), None, [learner.email])
        except Exception as exc:  # an unreachable mail server must not stop the others
            logger.warning("reminder_email_failed", assignment_id=assignment.pk,
                           kind=kind, error=str(exc))  # fmt: skip
    return True


def notify_new_assignment(assignment_id: int) -> int:
    assignment = Assignment.objects.select_related("scenario").filter(pk=assignment_id).first()
    if assignment is None:
        return 0
    return sum(_remind(assignment, p, ReminderKind.ASSIGNED) for p in _learners(assignment))


def send_due_reminders() -> int:
    """Due soon and overdue reminders for learners who have not passed (the hourly job)."""
    now = timezone.now()
    soon = now + timedelta(hours=settings.ASSIGNMENT_DUE_SOON_HOURS)
    sent = 0
    due = Assignment.objects.select_related("scenario").filter(
        due_at__isnull=False, due_at__lte=soon, due_at__gte=now - timedelta(days=30)
    )
    for assignment in due:
        kind = ReminderKind.OVERDUE if assignment.due_at <= now else ReminderKind.DUE_SOON
        learners = _learners(assignment)
        progress = analytics.learner_progress(assignment, [p.pk for p in learners])
        for learner in learners:
            mine = progress.get(learner.pk, analytics.LearnerProgress())
            if mine.status(assignment) != "passed":
                sent += _remind(assignment, learner, kind)
    return sent
