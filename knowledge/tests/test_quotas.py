"""Each organization's share of the knowledge base: stored bytes, documents and passages.

An upload that does not fit is refused (409 `knowledge_limit_reached`, naming the limit
and the current use) on every surface, and nothing is stored; a document that would
make more passages than the organization has room for fails at ingestion with the reason
and keeps none. Managers see the use against the limits; the admins are told.
"""

import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from accounts.models import NoticeKind, Organization, OrganizationNotice
from accounts.tests.factories import OrganizationFactory
from knowledge import quotas, services
from knowledge.models import Chunk, Document, DocumentStatus
from knowledge.tests import samples
from knowledge.tests.factories import ingested, upload

pytestmark = pytest.mark.django_db

API = "/api/v1/knowledge/documents/"


def post_file(client, name, data):
    return client.post(API, {"file": SimpleUploadedFile(name, data)}, format="multipart")


def stored_files(organization):
    folder = Path(settings.MEDIA_ROOT) / "documents" / str(organization.pk)
    return sorted(folder.iterdir()) if folder.exists() else []


def limit(organization, **limits):
    Organization.objects.filter(pk=organization.pk).update(**limits)
    organization.refresh_from_db()


def test_a_new_organization_starts_with_the_limits_from_settings(settings):
    settings.KNOWLEDGE_MAX_BYTES_PER_ORGANIZATION = 1234
    settings.KNOWLEDGE_MAX_DOCUMENTS_PER_ORGANIZATION = 5
    settings.KNOWLEDGE_MAX_CHUNKS_PER_ORGANIZATION = 0  # 0: no limit
    organization = OrganizationFactory()
    assert organization.knowledge_bytes_limit == 1234
    assert organization.knowledge_documents_limit == 5
    assert organization.knowledge_chunks_limit is None


def test_an_api_upload_over_the_storage_limit_is_a_409_naming_limit_and_use(
    api_as, client, alice, acme, carol, mallory, django_capture_on_commit_callbacks
):
    limit(acme, knowledge_bytes_limit=100)
    api = api_as(alice)
    assert post_file(api, "a.txt", b"a" * 60).status_code == 202
    files_before = stored_files(acme)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(api, "b.txt", b"b" * 60)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "knowledge_limit_reached"
    assert "This file (60 bytes) does not fit" in error["message"]
    assert "60 bytes of its 100 bytes storage limit are in use" in error["message"]
    assert Document.objects.count() == 1
    assert stored_files(acme) == files_before  # nothing stored
    # The organization's admin is told: by email, and on their home page.
    assert [message.to for message in mail.outbox] == [["carol@acme.test"]]
    assert "Knowledge base limit reached" in mail.outbox[0].subject
    assert "storage limit" in mail.outbox[0].body
    client.force_login(carol)
    assert "Knowledge base limit reached" in client.get(reverse("home")).content.decode()
    client.force_login(mallory)
    assert "Knowledge base limit reached" not in client.get(reverse("home")).content.decode()


def test_the_document_limit_is_refused_on_the_page_with_a_plain_sentence(client, alice, acme):
    limit(acme, knowledge_documents_limit=1)
    upload(alice, b"First document.", "one.txt")
    client.force_login(alice)

    response = client.post(
        reverse("knowledge:upload"), {"file": SimpleUploadedFile("two.txt", b"Second.")}
    )

    assert response.status_code == 409
    assert response["Content-Type"].startswith("text/plain")
    assert "it has 1 of its 1 documents" in response.content.decode()
    assert Document.objects.count() == 1


def test_the_same_file_again_is_not_refused_by_a_full_knowledge_base(api_as, alice, acme):
    limit(acme, knowledge_documents_limit=1)
    client = api_as(alice)
    first = post_file(client, "a.txt", b"Refunds in five days.").json()
    again = post_file(client, "b.txt", b"Refunds in five days.")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


def test_the_admin_upload_shows_the_refusal_as_a_message_and_stores_nothing(client, alice, acme):
    limit(acme, knowledge_documents_limit=1)
    upload(alice, b"First document.", "one.txt")
    client.force_login(alice)

    response = client.post(
        reverse("admin:knowledge_document_upload"),
        {"files": [SimpleUploadedFile("two.txt", b"Second."), SimpleUploadedFile("3.txt", b"3")]},
        follow=True,
    )

    full = "Your organization's knowledge base is full"
    messages = [str(m) for m in response.context["messages"]]
    assert any(m.startswith(f"two.txt: {full}") for m in messages)
    assert any(m.startswith(f"3.txt: {full}") for m in messages)
    assert Document.objects.count() == 1


def test_other_organizations_do_not_count_toward_the_limits(alice, acme, mallory):
    limit(acme, knowledge_documents_limit=1)
    upload(mallory, b"Globex's own document.", "globex.txt")
    assert upload(alice, b"Acme's first document.", "acme.txt").organization_id == acme.pk


def test_a_document_that_would_pass_the_passage_limit_fails_and_keeps_no_passages(
    alice, acme, carol
):
    kept = ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")
    assert kept.status == DocumentStatus.READY
    limit(acme, knowledge_chunks_limit=kept.chunk_count + 1)
    big = "\n\n".join(f"## Part {n}\n\n" + f"Sentence {n} about returns. " * 60 for n in range(8))

    document = ingested(alice, big.encode(), "big.md")

    assert document.status == DocumentStatus.FAILED
    assert "would make" in document.error
    assert f"has {kept.chunk_count:,} of its {kept.chunk_count + 1:,} passages in use" in (
        document.error
    )
    assert not Chunk.objects.filter(document=document).exists()
    assert Chunk.objects.filter(document=kept).count() == kept.chunk_count  # untouched
    notice = OrganizationNotice.objects.get(organization=acme)
    assert notice.kind == NoticeKind.KNOWLEDGE_LIMIT
    assert "passages in use" in notice.message


def _start_over(actor, *documents):
    for document in documents:
        services.reingest_document(actor=actor, document_id=document.pk)
        Chunk.objects.filter(document=document).delete()
        Document.objects.filter(pk=document.pk).update(chunk_count=0)


def test_the_passage_limit_is_checked_again_when_the_passages_are_stored(alice, acme, monkeypatch):
    """Two ingestions can both pass the check made before embedding; the one that stores
    second must still find no room (the check under the organization's lock)."""
    first = ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")
    second = ingested(alice, samples.RETURNS_POLICY_HTML.encode(), "returns.html")
    sizes = (first.chunk_count, second.chunk_count)
    assert min(sizes) >= 1
    _start_over(alice, first, second)
    limit(acme, knowledge_chunks_limit=max(sizes))  # room for either, not for both
    real_embed = services.embed_with_cache

    def embed_while_the_other_is_ingested(*args, **kwargs):
        monkeypatch.setattr(services, "embed_with_cache", real_embed)
        services.ingest_document(second.pk)  # passes its checks and stores its passages
        return real_embed(*args, **kwargs)

    monkeypatch.setattr(services, "embed_with_cache", embed_while_the_other_is_ingested)
    services.ingest_document(first.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert second.status == DocumentStatus.READY
    assert first.status == DocumentStatus.FAILED
    assert "passages in use" in first.error
    assert not Chunk.objects.filter(document=first).exists()
    assert Chunk.objects.filter(organization=acme).count() == second.chunk_count


@pytest.mark.django_db(transaction=True)
def test_two_uploads_racing_for_the_last_room_do_not_both_fit(monkeypatch):
    organization = OrganizationFactory(knowledge_documents_limit=1)
    from accounts.models import Role
    from accounts.tests.factories import UserFactory

    manager = UserFactory(organization=organization, role=Role.MANAGER)
    real_record = services.audit.record
    both_checking = threading.Barrier(2, timeout=10)

    def slow_record(*args, **kwargs):
        # The document row is written but not committed: a check that does not wait for
        # this upload to finish would still see room for the other.
        threading.Event().wait(0.5)
        return real_record(*args, **kwargs)

    monkeypatch.setattr(services.audit, "record", slow_record)
    results = []

    def send(text):
        try:
            both_checking.wait()
            results.append(upload(manager, text.encode(), f"{text}.txt"))
        except quotas.KnowledgeLimitReached as refused:
            results.append(refused)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(text,)) for text in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert Document.objects.filter(organization=organization).count() == 1
    assert sorted(type(result).__name__ for result in results) == [
        "Document",
        "KnowledgeLimitReached",
    ]


def test_deleting_a_document_resolves_the_full_knowledge_base_notice(api_as, alice, acme, carol):
    limit(acme, knowledge_documents_limit=1)
    client = api_as(alice)
    kept = post_file(client, "a.txt", b"First.").json()
    assert post_file(client, "b.txt", b"Second.").status_code == 409
    assert OrganizationNotice.objects.filter(organization=acme, closed_at__isnull=True).exists()

    client.delete(f"{API}{kept['id']}/")

    assert not OrganizationNotice.objects.filter(organization=acme, closed_at__isnull=True).exists()
    assert post_file(client, "b.txt", b"Second.").status_code == 202


def test_managers_see_use_against_the_limits_on_the_knowledge_and_home_pages(
    client, alice, acme, mallory
):
    limit(acme, knowledge_bytes_limit=10 * 1024 * 1024, knowledge_documents_limit=50)
    upload(alice, b"x" * 2048, "two-kb.txt")
    upload(mallory, b"y" * 4096, "globex.txt")
    client.force_login(alice)

    for page in (reverse("knowledge:documents"), reverse("home")):
        html = client.get(page).content.decode()
        assert "Knowledge base storage" in html, page
        assert "<td>2.0\xa0KB" in html, page
        assert "<td>10.0\xa0MB</td>" in html, page
        assert "Knowledge base documents</th><td>1 " in html, page
        assert "<td>50</td>" in html, page
        assert "4.0\xa0KB" not in html, page  # Globex's use is not Acme's


def test_learners_do_not_see_the_limits_on_their_home_page(client, bob):
    client.force_login(bob)
    assert "Knowledge base storage" not in client.get(reverse("home")).content.decode()


def test_the_admin_organization_page_shows_use_and_only_operators_change_limits(
    client, alice, acme, carol, oscar
):
    upload(alice, b"x" * 2048, "two-kb.txt")
    url = reverse("admin:accounts_organization_change", args=[acme.pk])

    client.force_login(carol)
    page = client.get(url)
    html = page.content.decode()
    assert "current use" in html.lower()
    assert "Knowledge base storage" in html
    assert "2.0\xa0KB" in html
    assert "knowledge_bytes_limit" not in page.context["adminform"].form.fields

    client.force_login(oscar)
    form_fields = client.get(url).context["adminform"].form.fields
    assert {"knowledge_bytes_limit", "knowledge_documents_limit", "knowledge_chunks_limit"} <= set(
        form_fields
    )


def test_an_operator_changing_a_limit_in_the_admin_is_audited(client, acme, oscar):
    from accounts.models import AuditEvent

    before = acme.knowledge_documents_limit
    url = reverse("admin:accounts_organization_change", args=[acme.pk])
    client.force_login(oscar)
    form = client.get(url).context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data = {name: value for name, value in data.items() if value not in (None, False)}
    data["knowledge_documents_limit"] = 7

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    acme.refresh_from_db()
    assert acme.knowledge_documents_limit == 7
    event = AuditEvent.objects.get(action="org.settings_changed")
    assert event.changes["knowledge_documents_limit"] == [before, 7]
