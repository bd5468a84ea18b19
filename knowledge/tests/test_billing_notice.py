"""An embedding provider out of credit: the document fails with the reason, and the
organization's admins are told (the same notices as for the language model)."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import NoticeKind, OrganizationNotice
from knowledge import services
from knowledge.embeddings import OpenAIEmbedder
from knowledge.models import DocumentStatus
from knowledge.tests import samples
from knowledge.tests.factories import upload
from knowledge.tests.openai_wire import Fail, OpenAIWireServer

pytestmark = pytest.mark.django_db


def test_an_exhausted_embedding_quota_fails_the_document_and_tells_the_admin_once(
    client, alice, acme, carol, mallory, django_capture_on_commit_callbacks
):
    quota = Fail(429, "You exceeded your current quota.", type="insufficient_quota",
                 code="insufficient_quota", retry_after="0")  # fmt: skip
    documents = [
        upload(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md"),
        upload(alice, samples.RETURNS_POLICY_HTML.encode(), "returns.html"),
    ]
    with OpenAIWireServer() as wire:
        wire.script(quota, quota)
        embedder = OpenAIEmbedder(wire.base_url, "sk-test", dimensions=8, max_retries=0)
        with django_capture_on_commit_callbacks(execute=True):
            for document in documents:
                services.ingest_document(document.pk, embedder=embedder)

    for document in documents:
        document.refresh_from_db()
        assert document.status == DocumentStatus.FAILED
        assert "run out of credit" in document.error
    assert [message.to for message in mail.outbox] == [["carol@acme.test"]]  # once
    assert "Embeddings out of credit" in mail.outbox[0].subject
    notice = OrganizationNotice.objects.get(organization=acme)
    assert (notice.kind, notice.occurrences) == (NoticeKind.EMBEDDINGS_CREDIT, 2)
    client.force_login(carol)
    assert "Embeddings out of credit" in client.get(reverse("home")).content.decode()
    client.force_login(mallory)
    assert "Embeddings out of credit" not in client.get(reverse("home")).content.decode()
