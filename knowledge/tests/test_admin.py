"""The knowledge admin deletes and re-ingests through the services (the same checks and
audit events as the pages and the API); a refusal is a message, not an error page."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from knowledge.models import Document
from knowledge.tests.factories import upload

pytestmark = pytest.mark.django_db


def test_deleting_a_document_in_the_admin_is_audited(client, alice):
    document = upload(alice, b"# Returns\n\nThirty days.", "returns.md")
    client.force_login(alice)

    response = client.post(
        reverse("admin:knowledge_document_delete", args=[document.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Document.objects.exists()
    event = AuditEvent.objects.get(action="document.deleted")
    assert (event.actor_user, event.target_id) == (alice, str(document.pk))


def test_deleting_selected_documents_goes_through_the_service(client, alice):
    documents = [upload(alice, f"# Doc {n}\n\nText {n}.".encode(), f"d{n}.md") for n in (1, 2)]
    client.force_login(alice)
    changelist = reverse("admin:knowledge_document_changelist")

    actions = client.get(changelist).context["action_form"].fields["action"].choices
    assert "delete_selected" not in dict(actions)  # Django's bulk delete would skip the service

    client.post(changelist, {"action": "delete_selected_documents",
                             "_selected_action": [d.pk for d in documents]})  # fmt: skip

    assert not Document.objects.exists()
    assert AuditEvent.objects.filter(action="document.deleted").count() == 2


def test_a_refused_deletion_is_a_message_and_deletes_nothing(client, alice, oscar):
    document = upload(alice, b"# Returns\n\nThirty days.", "returns.md")
    client.force_login(oscar)  # an operator sees every document but has no knowledge base

    response = client.post(
        reverse("admin:knowledge_document_delete", args=[document.pk]),
        {"post": "yes"},
        follow=True,
    )

    assert response.status_code == 200
    assert "Only managers of an organization can manage its knowledge base." in (
        response.content.decode()
    )
    assert Document.objects.filter(pk=document.pk).exists()
    assert not AuditEvent.objects.filter(action="document.deleted").exists()
