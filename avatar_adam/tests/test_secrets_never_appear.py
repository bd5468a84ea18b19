"""Stored secrets never leave the server: not in admin pages, API responses, the audit
log (page, CSV, diffs), logs, or the arguments of queued tasks."""

import base64
import logging

import pytest
from celery.signals import before_task_publish

from accounts.models import AuditEvent, AuthenticatorDevice, ProviderCredential
from accounts.tests.factories import enrol_second_factor
from training import sessions
from training.tests.factories import make_scenario

pytestmark = pytest.mark.django_db

PROVIDER_KEY = "sk-or-v1-NEVER-SHOW-3f9a7c1e55d04b2a"
NEW_PROVIDER_KEY = "sk-or-v1-ROTATED-NEVER-SHOW-77aa01"


@pytest.fixture
def published_tasks():
    bodies = []

    def capture(sender=None, body=None, headers=None, **kwargs):
        bodies.append(repr((sender, body, headers)))

    before_task_publish.connect(capture, weak=False)
    yield bodies
    before_task_publish.disconnect(capture)


def test_secrets_never_appear_anywhere_they_are_shown(
    client, api_as, acme, alice, bob, carol, caplog, capsys, published_tasks,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    caplog.set_level(logging.DEBUG)
    client.force_login(carol)

    # An organization admin saves, then replaces, the organization's LLM key.
    added = client.post(
        "/admin/accounts/providercredential/add/",
        {"service": "llm", "base_url": "https://1.1.1.1/v1", "api_key": PROVIDER_KEY},
    )
    assert added.status_code == 302, added.content
    credential = ProviderCredential.objects.get(organization=acme)
    assert credential.api_key == PROVIDER_KEY
    changed = client.post(
        f"/admin/accounts/providercredential/{credential.pk}/change/",
        {"service": "llm", "base_url": "https://1.1.1.1/v1", "api_key": NEW_PROVIDER_KEY},
    )
    assert changed.status_code == 302
    assert ProviderCredential.objects.get(pk=credential.pk).api_key == NEW_PROVIDER_KEY

    # A manager's authenticator secret, in both spellings people could see it in.
    device, _ = enrol_second_factor(alice)
    totp_hex = AuthenticatorDevice.objects.get(pk=device.pk).key
    totp_base32 = base64.b32encode(bytes.fromhex(totp_hex)).decode().rstrip("=")

    # Work that queues tasks for this organization (reply and grading).
    scenario = make_scenario(acme)
    with django_capture_on_commit_callbacks(execute=True):
        session = sessions.start_session(actor=bob, scenario_id=scenario.pk)
        sessions.post_message(actor=bob, session_id=session.pk, text="Hello there")
        sessions.end_session(actor=bob, session_id=session.pk)
    assert published_tasks, "no task was queued, so task arguments were not checked"

    shown = []
    for url in (
        "/admin/accounts/providercredential/",
        f"/admin/accounts/providercredential/{credential.pk}/change/",
        f"/admin/accounts/providercredential/{credential.pk}/history/",
        f"/admin/accounts/providercredential/{credential.pk}/delete/",
        f"/admin/accounts/user/{alice.pk}/change/",
        "/admin/accounts/user/",
        "/admin/accounts/auditevent/",
        "/audit/",
        "/audit/export.csv",
        *(f"/admin/accounts/auditevent/{pk}/change/" for pk in AuditEvent.objects.values_list(
            "pk", flat=True)),
    ):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 200, url
        shown.append((url, response.content.decode()))
    api = api_as(carol)
    for url in ("/api/v1/auth/me/", "/api/v1/users/", f"/api/v1/users/{alice.pk}/"):
        response = api.get(url)
        assert response.status_code == 200, url
        shown.append((url, response.content.decode()))

    key_events = AuditEvent.objects.filter(action="provider_key.changed")
    assert key_events.count() == 2
    # Both changes are recorded, the key itself only as redacted.
    assert [event.changes.get("api_key") for event in key_events] == ["[redacted]"] * 2
    shown.append(("audit diffs", repr(list(AuditEvent.objects.values_list("changes", flat=True)))))
    shown.append(("task arguments", "\n".join(published_tasks)))
    shown.append(("logs", caplog.text + capsys.readouterr().out))

    for secret in (PROVIDER_KEY, NEW_PROVIDER_KEY, totp_hex, totp_base32):
        for where, text in shown:
            assert secret not in text, f"a secret appears in {where}"
