"""The audit log: written with the change it records, append-only in the database."""

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts import audit, services
from accounts.models import AuditAction, AuditEvent
from accounts.tasks import purge_audit_events
from accounts.tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def test_creating_an_api_key_records_who_did_it_and_no_secret(alice):
    created = services.create_api_key(actor=alice, name="CRM sync")
    event = AuditEvent.objects.get(action="apikey.created")
    assert event.actor_user == alice
    assert event.organization_id == alice.organization_id
    assert event.target_id == str(created.api_key.pk)
    assert event.changes["name"] == "CRM sync"
    assert created.full_key not in str(event.changes)


def test_a_change_that_rolls_back_leaves_no_event(alice):
    def create_then_fail():
        with transaction.atomic():
            services.create_api_key(actor=alice, name="doomed")
            raise RuntimeError("something later failed")

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert not AuditEvent.objects.filter(action="apikey.created").exists()


def test_events_cannot_be_changed_or_deleted_through_the_orm_or_sql(alice):
    services.create_api_key(actor=alice, name="CRM sync")
    event = AuditEvent.objects.get()
    for attempt in (
        lambda: AuditEvent.objects.filter(pk=event.pk).update(action="auth.login"),
        lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
        lambda: connection.cursor().execute(
            "UPDATE accounts_auditevent SET actor_label = 'nobody' WHERE id = %s", [event.pk]
        ),
        lambda: connection.cursor().execute("DELETE FROM accounts_auditevent"),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    event.refresh_from_db()
    assert event.action == "apikey.created"


def test_the_retention_job_removes_old_events_and_records_that_it_ran(alice, settings):
    services.create_api_key(actor=alice, name="old")
    services.create_api_key(actor=alice, name="new")
    old = AuditEvent.objects.filter(changes__name="old")
    with connection.cursor() as cursor:  # age one event (the trigger allows this only here)
        cursor.execute(
            "ALTER TABLE accounts_auditevent DISABLE TRIGGER accounts_auditevent_append_only"
        )
        old.update(created_at=timezone.now() - timedelta(days=500))
        cursor.execute(
            "ALTER TABLE accounts_auditevent ENABLE TRIGGER accounts_auditevent_append_only"
        )

    assert purge_audit_events() == 1

    assert not old.exists()
    assert AuditEvent.objects.filter(changes__name="new").exists()
    ran = AuditEvent.objects.get(action="audit.retention_ran")
    assert ran.changes == {"deleted": 1, "older_than_days": 400}


def test_sign_ins_and_failures_are_recorded(client, bob, password):
    client.post(reverse("login"), {"username": bob.email, "password": "wrong"})
    client.post(reverse("login"), {"username": bob.email, "password": password})
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["auth.login_failed", "auth.login"]
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.organization_id == bob.organization_id
    assert "wrong" not in str(failed.changes)


def _change_in_the_admin(client, user, *, role, active):
    data = {
        "email": user.email, "full_name": user.full_name, "role": role,
        "is_active": "on" if active else "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }  # fmt: skip
    client.post(reverse("admin:accounts_user_change", args=[user.pk]), data)


def test_role_changes_and_deactivation_in_the_admin_are_recorded(client, carol, bob):
    client.force_login(carol)
    _change_in_the_admin(client, bob, role="manager", active=False)
    role = AuditEvent.objects.get(action="user.role_changed")
    assert role.changes == {"role": ["learner", "manager"]}
    assert role.actor_user == carol
    assert AuditEvent.objects.filter(action="user.deactivated", target_id=str(bob.pk)).exists()


def test_only_org_admins_see_their_organizations_events(client, carol, alice, mallory, globex):
    services.create_api_key(actor=alice, name="acme key")
    make_api_key(globex)
    services.create_api_key(actor=mallory, name="globex key")
    client.force_login(carol)
    page = client.get(reverse("admin:accounts_auditevent_changelist")).content.decode()
    assert "alice@acme.test" in page
    assert "mallory@globex.test" not in page
    client.force_login(alice)  # a manager
    assert client.get(reverse("admin:accounts_auditevent_changelist")).status_code == 403


def test_the_audit_page_filters_and_exports_only_the_organizations_events(
    client, carol, alice, mallory
):
    services.create_api_key(actor=alice, name="acme key")
    services.revoke_api_key(actor=alice, api_key_id=services.create_api_key(
        actor=alice, name="short-lived").api_key.pk)  # fmt: skip
    services.create_api_key(actor=mallory, name="=HYPERLINK(evil)")
    client.force_login(carol)

    page = client.get(reverse("audit-log"), {"action": "apikey.revoked"}).content.decode()
    assert "API key revoked" in page
    assert "acme key" not in page

    forged = client.get(
        reverse("audit-log"), {"organization": mallory.organization_id, "actor": "mallory"}
    ).content.decode()
    assert "mallory@globex.test" not in forged  # another organization's id changes nothing

    export = client.get(reverse("audit-log-csv"), {"actor": "alice"})
    assert export["Content-Disposition"].startswith("attachment")
    rows = export.content.decode().splitlines()
    assert rows[0].startswith("time,actor,action")
    assert len(rows) == 1 + 3  # two keys created, one revoked
    assert "HYPERLINK" not in export.content.decode()


def test_managers_read_the_audit_log_only_when_the_organization_allows_it(
    client, acme, alice, bob, mallory
):
    services.create_api_key(actor=alice, name="acme key")
    services.create_api_key(actor=mallory, name="globex key")
    client.force_login(alice)
    assert client.get(reverse("audit-log")).status_code == 403
    assert client.get(reverse("audit-log-csv")).status_code == 403
    assert client.get(reverse("admin:accounts_auditevent_changelist")).status_code == 403

    acme.managers_see_audit_log = True
    acme.save()
    page = client.get(reverse("audit-log")).content.decode()
    assert "alice@acme.test" in page
    assert "mallory@globex.test" not in page
    assert client.get(reverse("audit-log-csv")).status_code == 200
    assert client.get(reverse("admin:accounts_auditevent_changelist")).status_code == 200
    client.force_login(bob)  # learners never
    assert client.get(reverse("audit-log")).status_code == 403


def test_changing_the_organizations_settings_is_recorded(client, acme, carol):
    client.force_login(carol)
    response = client.post(
        reverse("admin:accounts_organization_change", args=[acme.pk]),
        {"name": "Acme", "slug": "acme", "require_second_factor": "on"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="org.settings_changed")
    assert event.changes == {"require_second_factor": [False, True]}
    assert event.actor_user == carol
    assert event.organization_id == acme.pk


# --- the vocabulary: registered by each app, checked when recorded ------------------------

PROJECT = Path(__file__).resolve().parents[2]


def _recorded_actions_in_the_code():
    """(file:line, action) for every audit.record(...) call outside the tests, the action
    read from a string literal or an AuditAction member."""
    found = []
    packages = [folder for folder in PROJECT.iterdir() if (folder / "__init__.py").exists()]
    for path in (path for package in packages for path in package.rglob("*.py")):
        relative = path.relative_to(PROJECT)
        if "tests" in relative.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "record"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "audit"
            ):
                continue
            where = f"{relative}:{node.lineno}"
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((where, first.value))
            elif (
                isinstance(first, ast.Attribute)
                and isinstance(first.value, ast.Name)
                and first.value.id == "AuditAction"
            ):
                found.append((where, AuditAction[first.attr].value))
            else:
                found.append((where, f"<not a literal: {ast.unparse(first) if first else ''}>"))
    return found


def test_every_action_recorded_in_the_code_is_registered():
    recorded = _recorded_actions_in_the_code()
    assert len(recorded) > 20  # the scan finds the calls (accounts, knowledge, training)
    registered = audit.registered_actions()
    assert [(where, action) for where, action in recorded if action not in registered] == []


def test_each_app_registers_its_own_actions():
    registered = audit.registered_actions()
    assert {action.value: action.label for action in AuditAction}.items() <= registered.items()
    assert registered["document.uploaded"] == "Document uploaded"  # knowledge's
    assert registered["scenario.published"] == "Scenario published"  # training's
    assert registered["assignment.created"] == "Assignment created"
    # accounts keeps only its own vocabulary
    assert not [a for a in AuditAction.values if a.split(".")[0] in ("document", "scenario")]


def test_recording_an_action_nobody_registered_is_refused(alice):
    with pytest.raises(ImproperlyConfigured, match=r"'document\.shredded' is not registered"):
        audit.record("document.shredded", actor=alice)
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "actions",
    [
        {"apikey.created": "Key made"},  # another label for a registered action
        {"Shredded": "Shredded"},  # not subject.event
        {"document." + "x" * 40: "Too long"},  # does not fit AuditEvent.action
    ],
)
def test_registering_a_clashing_or_malformed_action_is_refused(actions, monkeypatch):
    monkeypatch.setattr(audit, "_actions", dict(audit._actions))
    with pytest.raises(ImproperlyConfigured):
        audit.register_actions(actions)


def test_a_new_action_needs_no_migration_and_shows_its_label(client, carol, monkeypatch):
    monkeypatch.setattr(audit, "_actions", dict(audit._actions))
    audit.register_actions({"report.exported": "Report exported"})
    audit.register_actions({"report.exported": "Report exported"})  # again: harmless
    audit.record("report.exported", actor=carol)

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits 1 if needed

    client.force_login(carol)
    page = client.get(reverse("audit-log"), {"action": "report.exported"}).content.decode()
    assert '<option value="report.exported" selected>Report exported</option>' in page
    assert "<td>Report exported</td>" in page
    admin = client.get(reverse("admin:accounts_auditevent_changelist")).content.decode()
    assert "?action=report.exported" in admin  # the list filter offers it
    assert "Report exported" in admin


def test_events_of_other_apps_actions_are_filtered_and_labelled(client, carol, alice, api_as):
    audit.record("document.uploaded", actor=alice, changes={"title": "Returns"})  # knowledge's
    services.create_api_key(actor=alice, name="CRM sync")
    client.force_login(carol)

    admin = client.get(
        reverse("admin:accounts_auditevent_changelist"), {"action": "document.uploaded"}
    )
    assert [event.action for event in admin.context["cl"].result_list] == ["document.uploaded"]
    assert '<td class="field-action_label">Document uploaded</td>' in admin.content.decode()

    page = client.get(reverse("audit-log"), {"action": "document.uploaded"}).content.decode()
    assert "<td>Document uploaded</td>" in page
    assert "<td>API key created</td>" not in page

    api = api_as(carol).get("/api/v1/audit-events/?action=document.uploaded").json()
    assert [event["action"] for event in api["results"]] == ["document.uploaded"]


def test_the_audit_page_reads_as_changes_to_named_things(client, carol, bob):
    client.force_login(carol)
    _change_in_the_admin(client, bob, role="manager", active=True)
    page = client.get(reverse("audit-log")).content.decode()
    assert "<strong>role</strong>: learner → manager" in page
    assert f'href="{reverse("admin:accounts_user_change", args=[bob.pk])}">{bob}</a>' in page
    assert "[&#x27;learner&#x27;" not in page  # no Python repr


def test_a_reversed_date_range_says_so(client, carol):
    client.force_login(carol)
    page = client.get(reverse("audit-log"), {"since": "2026-12-07", "until": "2026-12-01"})
    assert "The From date (2026-12-07) is after the To date (2026-12-01)" in page.content.decode()
