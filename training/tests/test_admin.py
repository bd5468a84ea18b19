"""The training admin calls the same services as the pages and the API: publishing is
audited, a used scenario is versioned, an assignment is checked and audited, and a refusal
is shown on the form with nothing saved."""

import importlib

import pytest
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.tests.factories import TeamFactory
from training.models import Assignment, Scenario
from training.tests.factories import graded_session, make_scenario

pytestmark = pytest.mark.django_db


def as_posted(response, **changes):
    """The admin page's forms (and inline forms) as a browser would post them unchanged,
    then `changes` (None drops a field)."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def change_scenario(client, scenario, **changes):
    url = reverse("admin:training_scenario_change", args=[scenario.pk])
    return client.post(url, as_posted(client.get(url), **changes))


def test_publishing_a_scenario_in_the_admin_records_the_audit_event(client, alice):
    draft = make_scenario(alice.organization, published=False)
    client.force_login(alice)

    response = change_scenario(client, draft, published="on")

    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="scenario.published")
    assert event.actor_user == alice
    assert event.target_id == str(draft.pk)  # an unused draft is edited in place
    assert event.changes == {"title": "Renewal call", "version": 1}
    draft.refresh_from_db()
    assert (draft.published, draft.version) == (True, 1)


def test_a_scenario_added_in_the_admin_gets_its_rubric_and_audit_event(client, alice):
    client.force_login(alice)
    url = reverse("admin:training_scenario_add")
    data = as_posted(
        client.get(url),
        title="Price objection",
        published="on",
        **{"rubric_items-0-name": "Holds the price",
           "rubric_items-0-good_looks_like": "Explains the value before any discount."},
    )  # fmt: skip

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:3000]
    scenario = Scenario.objects.get(title="Price objection")
    assert scenario.organization_id == alice.organization_id
    assert scenario.created_by == alice
    assert list(scenario.rubric_items.values_list("name", flat=True)) == ["Holds the price"]
    assert AuditEvent.objects.get(action="scenario.published").target_id == str(scenario.pk)


def test_editing_a_used_published_scenario_in_the_admin_saves_version_n_plus_1(client, alice, bob):
    used = make_scenario(alice.organization)
    session = graded_session(bob, used, 80)
    client.force_login(alice)

    response = change_scenario(
        client, used, title="Renewal call, harder", **{"rubric_items-1-weight": "3"}
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    versions = Scenario.objects.filter(family=used.family).order_by("version")
    assert [(s.version, s.title, s.is_current) for s in versions] == [
        (1, "Renewal call", False),
        (2, "Renewal call, harder", True),
    ]
    old, new = versions
    assert [i.weight for i in old.rubric_items.all()] == [2, 1]  # the session's version kept
    assert [i.weight for i in new.rubric_items.all()] == [2, 3]
    session.refresh_from_db()
    assert session.scenario_id == old.pk
    assert not AuditEvent.objects.filter(action="scenario.published").exists()  # still published


def test_saving_an_unchanged_published_scenario_makes_no_new_version(client, alice):
    published = make_scenario(alice.organization)
    client.force_login(alice)

    assert change_scenario(client, published).status_code == 302

    assert Scenario.objects.filter(family=published.family).count() == 1


def test_a_refused_scenario_is_a_form_error_and_saves_nothing(client, oscar):
    client.force_login(oscar)  # a platform operator belongs to no organization
    url = reverse("admin:training_scenario_add")

    response = client.post(url, as_posted(client.get(url), title="Nobody's scenario"))

    assert response.status_code == 200
    assert "Only managers of an organization can author scenarios." in response.content.decode()
    assert not Scenario.objects.exists()


def test_deleting_scenarios_in_the_admin_goes_through_the_service(client, alice, bob):
    unused = make_scenario(alice.organization, title="Draft idea", published=False)
    used = make_scenario(alice.organization, title="Renewal call")
    graded_session(bob, used, 70)
    client.force_login(alice)

    response = client.post(
        reverse("admin:training_scenario_changelist"),
        {"action": "delete_selected", "_selected_action": [unused.pk, used.pk], "post": "yes"},
        follow=True,
    )

    page = response.content.decode()
    assert "kept for their history" in page
    assert list(Scenario.objects.values_list("title", flat=True)) == ["Renewal call"]
    assert AuditEvent.objects.get(action="scenario.deleted").changes["title"] == "Draft idea"


def add_assignment(client, scenario, **fields):
    data = {"scenario": scenario.pk, "attempts_required": 1, "passing_score": 70, **fields}
    return client.post(reverse("admin:training_assignment_add"), data)


def test_an_admin_assignment_is_validated_and_audited_like_the_api(client, alice, acme_team):
    scenario = make_scenario(alice.organization)
    client.force_login(alice)

    response = add_assignment(client, scenario, team=acme_team.pk, passing_score=80)

    assert response.status_code == 302, response.content.decode()[:3000]
    assignment = Assignment.objects.get()
    assert (assignment.team, assignment.passing_score) == (acme_team, 80)
    assert assignment.created_by == alice
    event = AuditEvent.objects.get(action="assignment.created")
    assert event.target_id == str(assignment.pk)
    assert event.changes == {"scenario": "Renewal call", "team": "Field Sales", "learner": ""}


def test_an_admin_assignment_to_both_a_team_and_a_learner_is_a_form_error(
    client, alice, bob, acme_team
):
    scenario = make_scenario(alice.organization)
    client.force_login(alice)

    response = add_assignment(client, scenario, team=acme_team.pk, learner=bob.pk)

    assert response.status_code == 200
    assert "exactly one of them" in response.content.decode()
    assert not Assignment.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="assignment.").exists()


def test_an_admin_assignment_to_nobody_is_a_form_error(client, alice):
    client.force_login(alice)
    response = add_assignment(client, make_scenario(alice.organization))
    assert response.status_code == 200
    assert "exactly one of them" in response.content.decode()
    assert not Assignment.objects.exists()


def test_another_organizations_team_cannot_be_assigned_in_the_admin(client, alice, globex):
    foreign_team = TeamFactory(organization=globex, name="Globex Sales")
    client.force_login(alice)
    response = add_assignment(client, make_scenario(alice.organization), team=foreign_team.pk)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Assignment.objects.exists()


def test_an_operator_assigning_in_the_admin_sees_the_services_refusal(client, oscar, acme):
    scenario = make_scenario(acme)
    team = TeamFactory(organization=acme, name="Support")
    client.force_login(oscar)

    response = add_assignment(client, scenario, team=team.pk)

    assert response.status_code == 200
    assert "Only managers of an organization can assign training." in response.content.decode()
    assert not Assignment.objects.exists()


def test_changing_and_withdrawing_an_assignment_in_the_admin_is_audited(client, alice, bob):
    scenario = make_scenario(alice.organization)
    assignment = Assignment.objects.create(
        organization=alice.organization, scenario=scenario, learner=bob
    )
    client.force_login(alice)

    response = client.post(
        reverse("admin:training_assignment_change", args=[assignment.pk]),
        {"attempts_required": 2, "passing_score": 90, "learner": alice.pk},  # learner is fixed
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assignment.refresh_from_db()
    assert (assignment.learner, assignment.passing_score) == (bob, 90)
    assert AuditEvent.objects.get(action="assignment.updated").changes == {
        "attempts_required": ["1", "2"],
        "passing_score": ["70", "90"],
    }

    response = client.post(
        reverse("admin:training_assignment_delete", args=[assignment.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Assignment.objects.exists()
    assert AuditEvent.objects.filter(action="assignment.deleted").count() == 1


def test_the_database_refuses_an_assignment_with_both_or_neither_assignee(alice, bob, acme_team):
    scenario = make_scenario(alice.organization)
    for assignees in ({"team": acme_team, "learner": bob}, {}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Assignment.objects.create(organization=alice.organization, scenario=scenario,
                                      **assignees)  # fmt: skip
    assert not Assignment.objects.exists()


def test_the_migration_stops_and_names_assignments_with_two_assignees(alice, bob, acme_team):
    from django.apps import apps

    migration = importlib.import_module("training.migrations.0003_assignment_has_one_assignee")
    scenario = make_scenario(alice.organization)
    with connection.cursor() as cursor:  # as before the migration (undone with the test)
        cursor.execute(
            "ALTER TABLE training_assignment DROP CONSTRAINT assignment_has_one_assignee"
        )
    both = Assignment.objects.create(
        organization=alice.organization, scenario=scenario, team=acme_team, learner=bob
    )

    with pytest.raises(CommandError, match=rf"1 assignment\(s\).*ids {both.pk}\)"):
        migration.refuse_assignments_with_two_assignees(apps, None)

    assert Assignment.objects.filter(pk=both.pk, team=acme_team, learner=bob).exists()


def test_a_manager_reaches_a_learners_conversation_from_the_admin_and_the_dashboard(
    client, alice, bob, acme
):
    session = graded_session(bob, make_scenario(acme, title="Renewal call"), 77)
    client.force_login(alice)

    listing = client.get(reverse("admin:training_trainingsession_changelist")).content.decode()
    link = reverse("training:session", args=[session.pk])
    assert f'href="{link}"' in listing
    assert "77/100" in listing
    page = client.get(link)
    assert page.status_code == 200
    assert "Debrief" in page.content.decode()
    # The admin's own page of the session shows the transcript too.
    detail = client.get(reverse("admin:training_trainingsession_change", args=[session.pk]))
    opening = "<strong>Dana:</strong> I&#x27;m not sure we&#x27;re renewing."
    assert opening in detail.content.decode()

    home = client.get(reverse("home")).content.decode()
    assert f"?learner__id__exact={bob.pk}" in home
    filtered = client.get(
        reverse("admin:training_trainingsession_changelist"), {"learner__id__exact": bob.pk}
    )
    assert filtered.status_code == 200
    assert f'href="{link}"' in filtered.content.decode()
