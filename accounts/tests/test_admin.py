"""The admin, as a manager sees it: only their organization, and no way out of it."""

import pytest
from django.urls import reverse

from accounts.models import Role, Team, User
from accounts.tests.factories import TeamFactory, UserFactory
from conftest import token_for

pytestmark = pytest.mark.django_db


def change_user(client, user, **overrides):
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "is_active": "on" if user.is_active else "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    data.update(overrides)
    data = {key: value for key, value in data.items() if value is not None}
    return client.post(reverse("admin:accounts_user_change", args=[user.pk]), data)


def test_a_manager_sees_only_their_organizations_users(client, alice, bob, mallory):
    client.force_login(alice)
    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert bob.email in page
    assert mallory.email not in page


def test_a_learner_cannot_enter_the_admin(client, bob):
    client.force_login(bob)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_a_manager_cannot_grant_superuser_or_move_a_user_to_another_org(client, alice, bob, globex):
    client.force_login(alice)
    response = change_user(
        client, bob, full_name="Bob Builder", is_superuser="on", organization=str(globex.pk)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    bob.refresh_from_db()
    assert bob.full_name == "Bob Builder"
    assert not bob.is_superuser
    assert bob.organization.slug == "acme"


def test_an_org_admin_cannot_make_themselves_superuser(client, carol):
    client.force_login(carol)
    response = change_user(client, carol, is_superuser="on")
    assert response.status_code == 302
    carol.refresh_from_db()
    assert not carol.is_superuser
    assert carol.role == Role.ADMIN


def test_a_manager_cannot_promote_anyone_to_org_admin(client, alice, bob):
    client.force_login(alice)
    response = change_user(client, bob, role=Role.ADMIN)
    assert response.status_code == 200  # the form is shown again with an error
    assert "Select a valid choice" in response.content.decode()
    bob.refresh_from_db()
    assert bob.role == Role.LEARNER


def test_an_org_admin_can_promote_a_manager(client, carol, alice):
    client.force_login(carol)
    assert change_user(client, alice, role=Role.ADMIN).status_code == 302
    alice.refresh_from_db()
    assert alice.role == Role.ADMIN


def test_a_user_a_manager_adds_joins_the_managers_organization(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "new.hire@acme.test",
            "full_name": "New Hire",
            "role": Role.LEARNER,
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    new_user = User.objects.get(email="new.hire@acme.test")
    assert new_user.organization == alice.organization
    assert new_user.check_password("a-long-enough-passphrase")


def test_team_member_choices_are_only_the_managers_organization(client, alice, bob, mallory):
    client.force_login(alice)
    page = client.get(reverse("admin:accounts_team_add")).content.decode()
    assert bob.email in page
    assert mallory.email not in page


def test_a_team_saved_by_a_manager_cannot_take_foreign_members(client, alice, bob, mallory):
    client.force_login(alice)
    response = client.post(
        reverse("admin:accounts_team_add"), {"name": "Night shift", "members": [mallory.pk]}
    )
    assert response.status_code == 200  # refused: mallory is not a valid choice
    assert not Team.objects.filter(name="Night shift").exists()


def test_a_manager_sees_only_their_organizations_teams(client, alice, acme, globex):
    TeamFactory(organization=acme, name="Acme Closers")
    TeamFactory(organization=globex, name="Globex Secret Team")
    client.force_login(alice)
    page = client.get(reverse("admin:accounts_team_changelist")).content.decode()
    assert "Acme Closers" in page
    assert "Globex Secret Team" not in page


def test_deactivating_a_user_in_the_admin_ends_their_api_sessions(client, api_client, alice, bob):
    tokens = token_for(api_client, bob)
    client.force_login(alice)

    response = change_user(client, bob, is_active=None)
    assert response.status_code == 302

    refused = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refused.status_code == 401


def test_a_manager_cannot_edit_an_org_admin(client, alice, carol):
    client.force_login(alice)
    change_user(client, carol, full_name="Hijacked")
    carol.refresh_from_db()
    assert carol.full_name != "Hijacked"


def test_the_operator_sees_every_organization(client, oscar, bob, mallory):
    client.force_login(oscar)
    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert bob.email in page
    assert mallory.email in page


def test_demoting_a_manager_ends_their_admin_access(client, carol, acme):
    manager = UserFactory(organization=acme, role=Role.MANAGER)
    client.force_login(carol)
    change_user(client, manager, role=Role.LEARNER)
    client.force_login(manager)
    assert client.get(reverse("admin:index")).status_code == 302


def test_a_duplicate_team_name_is_a_form_error_not_a_crash(client, alice, acme_team):
    client.force_login(alice)
    response = client.post(reverse("admin:accounts_team_add"), {"name": acme_team.name})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Team.objects.filter(name=acme_team.name).count() == 1


def test_an_operator_placed_in_an_organization_is_out_of_its_staffs_reach(
    client, api_as, acme, carol
):
    operator = User.objects.create_superuser("ops@platform.test", "an-operator-passphrase")
    operator.organization = acme
    operator.save()
    client.force_login(carol)  # even the organization's admin
    assert client.get(reverse("admin:accounts_user_change", args=[operator.pk])).status_code in (
        302, 404,
    )  # fmt: skip
    password_page = client.get(f"/admin/accounts/user/{operator.pk}/password/")
    assert password_page.status_code in (302, 403, 404)
    api = api_as(carol)
    assert api.get(f"/api/v1/users/{operator.pk}/").status_code == 404
    assert (
        api.patch(f"/api/v1/users/{operator.pk}/", {"is_active": False}, format="json").status_code
        == 404
    )
    operator.refresh_from_db()
    assert operator.is_active
