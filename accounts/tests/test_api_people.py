"""People, teams and the organization through the API (managers and admins)."""

import re

import pytest
from django.core import mail

from accounts.models import AuditEvent, Role, User
from accounts.tests.factories import TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_manager_adds_a_person_who_gets_an_email_to_choose_a_password(
    api_as, alice, acme_team, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = api_as(alice).post(
            "/api/v1/users/",
            {"email": "New.Person@Acme.test", "full_name": "New Person", "teams": [acme_team.pk]},
            format="json",
        )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["email"] == "new.person@acme.test"
    assert body["role"] == "learner"
    assert [team["id"] for team in body["teams"]] == [acme_team.pk]
    person = User.objects.get(email="new.person@acme.test")
    assert not person.has_usable_password()
    assert AuditEvent.objects.filter(action="user.created", target_id=str(person.pk)).exists()

    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    done = client.post(form_page.redirect_chain[-1][0], {
        "new_password1": "a-fresh-passphrase-17", "new_password2": "a-fresh-passphrase-17",
    })  # fmt: skip
    assert done.status_code == 302
    person.refresh_from_db()
    assert person.check_password("a-fresh-passphrase-17")


def test_bad_or_forbidden_people_changes_are_refused_and_change_nothing(
    api_as, alice, bob, carol, mallory
):
    manager = api_as(alice)
    duplicate = manager.post("/api/v1/users/", {"email": bob.email}, format="json")
    assert duplicate.status_code == 400
    assert "email" in duplicate.json()["error"]["fields"]
    admin = manager.post("/api/v1/users/", {"email": "x@acme.test", "role": "admin"}, format="json")
    assert admin.status_code == 403
    assert (
        manager.patch(f"/api/v1/users/{carol.pk}/", {"full_name": "X"}, format="json").status_code
        == 403
    )
    assert (
        manager.patch(
            f"/api/v1/users/{mallory.pk}/", {"role": "learner"}, format="json"
        ).status_code
        == 404
    )
    assert (
        manager.patch(f"/api/v1/users/{alice.pk}/", {"is_active": False}, format="json").status_code
        == 400
    )
    foreign_team = TeamFactory(organization=mallory.organization)
    teams = manager.patch(f"/api/v1/users/{bob.pk}/", {"teams": [foreign_team.pk]}, format="json")
    assert teams.status_code == 400
    assert (
        api_as(bob).post("/api/v1/users/", {"email": "y@acme.test"}, format="json").status_code
        == 403
    )
    assert User.objects.filter(email__in=["x@acme.test", "y@acme.test"]).count() == 0
    assert not bob.teams.exists()


def test_promoting_and_deactivating_is_audited_and_ends_api_sessions(api_as, alice, bob):
    learner = api_as(bob)
    manager = api_as(alice)
    promoted = manager.patch(f"/api/v1/users/{bob.pk}/", {"role": "manager"}, format="json")
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "manager"
    assert AuditEvent.objects.get(action="user.role_changed").changes == {
        "role": ["learner", "manager"]
    }
    deactivated = manager.patch(f"/api/v1/users/{bob.pk}/", {"is_active": False}, format="json")
    assert deactivated.json()["is_active"] is False
    assert AuditEvent.objects.filter(action="user.deactivated").exists()
    assert learner.get("/api/v1/auth/me/").status_code == 401


def test_managers_create_rename_fill_and_delete_teams(api_as, alice, bob, mallory):
    manager = api_as(alice)
    created = manager.post(
        "/api/v1/teams/", {"name": "Night Shift", "members": [bob.pk]}, format="json"
    )
    assert created.status_code == 201
    team_id = created.json()["id"]
    assert created.json()["members"] == [bob.pk]
    same_name = manager.post("/api/v1/teams/", {"name": "night shift"}, format="json")
    assert same_name.status_code == 400
    foreign = manager.post(
        "/api/v1/teams/", {"name": "Spies", "members": [mallory.pk]}, format="json"
    )
    assert foreign.status_code == 400
    renamed = manager.patch(
        f"/api/v1/teams/{team_id}/", {"name": "Late Shift", "members": []}, format="json"
    )
    assert renamed.json()["name"] == "Late Shift"
    assert renamed.json()["members"] == []
    assert manager.get("/api/v1/teams/?name=late").json()["count"] == 1
    assert api_as(bob).delete(f"/api/v1/teams/{team_id}/").status_code == 403
    assert manager.delete(f"/api/v1/teams/{team_id}/").status_code == 204
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="team.")] == [
        "team.deleted", "team.updated", "team.created",
    ]  # fmt: skip


def test_users_filter_by_role_team_and_activity(api_as, alice, bob, acme, acme_team):
    UserFactory(organization=acme, email="gone@acme.test", is_active=False)
    manager = api_as(alice)
    learners = manager.get("/api/v1/users/?role=learner&is_active=true").json()["results"]
    assert [u["email"] for u in learners] == ["bob@acme.test"]
    in_team = manager.get(f"/api/v1/users/?team={acme_team.pk}").json()["results"]
    assert [u["email"] for u in in_team] == ["bob@acme.test"]
    newest = manager.get("/api/v1/users/?ordering=-date_joined").json()["results"]
    assert newest[0]["email"] == "gone@acme.test"


def test_organization_admins_change_the_organizations_settings(api_as, alice, carol, acme):
    assert api_as(alice).get("/api/v1/organization/").json()["name"] == "Acme"
    refused = api_as(alice).patch(
        "/api/v1/organization/", {"require_second_factor": True}, format="json"
    )
    assert refused.status_code == 403
    changed = api_as(carol).patch(
        "/api/v1/organization/",
        {"require_second_factor": True, "managers_see_audit_log": True, "slug": "hijack"},
        format="json",
    )
    assert changed.status_code == 200
    acme.refresh_from_db()
    assert acme.require_second_factor
    assert acme.managers_see_audit_log
    assert acme.slug == "acme"  # read-only
    assert AuditEvent.objects.get(action="org.settings_changed").changes == {
        "require_second_factor": [False, True],
        "managers_see_audit_log": [False, True],
    }
    assert Role.ADMIN == carol.role


def test_the_audit_log_through_the_api_follows_the_same_rules_as_the_page(
    api_as, acme, alice, bob, carol, mallory
):
    from accounts import services

    services.create_api_key(actor=alice, name="acme key")
    services.create_api_key(actor=mallory, name="globex key")

    events = api_as(carol).get("/api/v1/audit-events/?action=apikey.created").json()["results"]
    assert [e["actor_label"] for e in events] == ["alice@acme.test"]
    forged = api_as(carol).get(f"/api/v1/audit-events/?organization={mallory.organization_id}")
    assert all(e["actor_label"] != "mallory@globex.test" for e in forged.json()["results"])
    assert api_as(alice).get("/api/v1/audit-events/").status_code == 403
    acme.managers_see_audit_log = True
    acme.save()
    assert api_as(alice).get("/api/v1/audit-events/").status_code == 200
    assert api_as(bob).get("/api/v1/audit-events/").status_code == 403
    bad = api_as(carol).get("/api/v1/audit-events/?since=yesterday")
    assert bad.status_code == 400


def test_operators_list_and_create_organizations_and_others_see_their_own(
    api_as, acme, globex, alice, oscar
):
    operator = api_as(oscar)
    slugs = [o["slug"] for o in operator.get("/api/v1/organizations/").json()["results"]]
    assert slugs == ["acme", "globex"]
    created = operator.post(
        "/api/v1/organizations/", {"name": "Contoso", "slug": "contoso"}, format="json"
    )
    assert created.status_code == 201
    assert AuditEvent.objects.filter(action="org.created", actor_user=oscar).exists()
    taken = operator.post(
        "/api/v1/organizations/", {"name": "Again", "slug": "acme"}, format="json"
    )
    assert taken.status_code == 400
    assert "slug" in taken.json()["error"]["fields"]

    manager = api_as(alice)
    assert [o["slug"] for o in manager.get("/api/v1/organizations/").json()["results"]] == ["acme"]
    refused = manager.post(
        "/api/v1/organizations/", {"name": "Mine", "slug": "mine"}, format="json"
    )
    assert refused.status_code == 403
