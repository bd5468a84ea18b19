"""Learners hear about their assignments: a new one, one due soon, one overdue; each at
most once, at most one email a day, never once passed; the home page marks them."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from training import assignments, reminders
from training.models import Assignment, AssignmentReminder
from training.tests.factories import graded_session, make_scenario

pytestmark = pytest.mark.django_db


def _assign(scenario, learner, due_in_hours=None):
    due = timezone.now() + timedelta(hours=due_in_hours) if due_in_hours is not None else None
    return Assignment.objects.create(
        organization_id=scenario.organization_id, scenario=scenario, learner=learner, due_at=due
    )


def test_a_new_assignment_emails_each_learner_of_the_team_once(
    alice, bob, acme, acme_team, django_capture_on_commit_callbacks
):
    colleague = UserFactory(organization=acme)
    acme_team.members.add(colleague)
    scenario = make_scenario(acme, title="Renewal call")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assignment = assignments.create_assignment(
            actor=alice, scenario_id=scenario.pk, team_id=acme_team.pk,
            due_at=timezone.now() + timedelta(days=5),
        )  # fmt: skip
    assert len(callbacks) == 1  # the email task is queued once the assignment is saved

    assert reminders.notify_new_assignment(assignment.pk) == 2
    assert reminders.notify_new_assignment(assignment.pk) == 0  # never twice
    assert sorted(m.to[0] for m in mail.outbox) == sorted([bob.email, colleague.email])
    assert mail.outbox[0].subject == "New training for you: Renewal call"
    assert "http://127.0.0.1:8000/" in mail.outbox[0].body


def test_due_soon_and_overdue_reminders_skip_those_who_passed_and_never_repeat(
    alice, bob, acme, settings
):
    settings.ASSIGNMENT_EMAILS_PER_DAY = 5
    passer = UserFactory(organization=acme)
    scenario = make_scenario(acme, title="Renewal call")
    soon = _assign(scenario, bob, due_in_hours=20)
    late = _assign(make_scenario(acme, title="Late"), bob, due_in_hours=-3)
    passed = _assign(scenario, passer, due_in_hours=5)
    graded_session(passer, scenario, 90)
    Assignment.objects.filter(pk=passed.pk).update(created_at=timezone.now() - timedelta(days=2))

    assert reminders.send_due_reminders() == 2
    assert reminders.send_due_reminders() == 0
    kinds = {(r.assignment_id, r.kind) for r in AssignmentReminder.objects.all()}
    assert kinds == {(soon.pk, "due_soon"), (late.pk, "overdue")}
    assert sorted(m.subject for m in mail.outbox) == ["Due soon: Renewal call", "Overdue: Late"]
    assert all(m.to == [bob.email] for m in mail.outbox)


def test_at_most_one_email_a_day_the_rest_on_the_home_page(client, bob, acme):
    scenario = make_scenario(acme, title="Renewal call")
    first = _assign(scenario, bob)
    second = _assign(make_scenario(acme, title="Late"), bob, due_in_hours=-1)
    reminders.notify_new_assignment(first.pk)
    reminders.send_due_reminders()

    assert len(mail.outbox) == 1
    assert AssignmentReminder.objects.get(assignment=second).emailed is False
    client.force_login(bob)
    page = client.get(reverse("home")).content.decode()
    assert 'badge new">New</span>' in page
    assert 'badge overdue">Overdue</span>' in page
