"""Uploading and ingesting documents: answered at once, idempotent, failures explained."""

import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge import services
from knowledge.embeddings import get_embedder
from knowledge.models import Chunk, Document, DocumentStatus, EmbeddingCacheEntry
from knowledge.tests import samples
from knowledge.tests.factories import ingested, upload

pytestmark = pytest.mark.django_db


class CountingEmbedder:
    """The real local embedder, counting the texts it is asked to embed."""

    def __init__(self, fail_after_calls=None):
        self.inner = get_embedder()
        self.model_id = self.inner.model_id
        self.dimensions = self.inner.dimensions
        self.texts = 0
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    def embed(self, texts):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise SystemExit("worker killed")  # what a SIGTERM'd worker looks like mid-task
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)


def long_markdown(sections=8):
    parts = ["# Handbook"]
    for index in range(sections):
        parts.append(f"## Section {index}")
        parts.extend(
            f"Paragraph {index}.{n} explains policy number {index * 10 + n} in detail, with "
            "enough words to make the passage long enough to need several chunks overall."
            for n in range(12)
        )
    return "\n\n".join(parts).encode()


def test_a_markdown_document_becomes_ready_with_headed_passages(alice):
    document = ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")

    assert document.status == DocumentStatus.READY
    assert document.progress == 100
    assert document.chunk_count == Chunk.objects.filter(document=document).count() > 0
    claim = Chunk.objects.get(document=document, text__contains="serial number")
    assert claim.heading_path == "Warranty guide › How to claim"
    assert claim.embedding is not None
    assert len(claim.embedding) == get_embedder().dimensions
    assert Chunk.objects.filter(document=document, search_vector__isnull=True).count() == 0


def test_a_pdf_keeps_its_page_numbers(alice):
    data = samples.make_pdf([["Returns within 30 days."], ["Shipping takes five days."]])
    document = ingested(alice, data, "policy.pdf")
    assert document.page_count == 2
    assert Chunk.objects.get(document=document, text__contains="Shipping").page == 2


def test_long_documents_are_split_into_token_sized_overlapping_passages(alice, settings):
    document = ingested(alice, long_markdown(), "handbook.md")
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert len(chunks) >= 8
    assert max(chunk.token_count for chunk in chunks) <= settings.CHUNK_TARGET_TOKENS + 5
    assert all(chunk.heading_path.startswith("Handbook › Section") for chunk in chunks)
    # consecutive passages of one section share their boundary sentence
    same_section = [
        (a, b) for a, b in itertools.pairwise(chunks) if a.heading_path == b.heading_path
    ]
    assert same_section
    a, b = same_section[0]
    assert a.text.split("\n\n")[-1] in b.text


def test_the_same_file_twice_is_the_same_document(alice):
    first = upload(alice, b"Refunds take five days.", "refunds.txt")
    result = services.upload_document(
        actor=alice, uploaded_file=SimpleUploadedFile("copy.txt", b"Refunds take five days.")
    )
    assert not result.created
    assert result.document.pk == first.pk
    assert Document.objects.count() == 1


def test_the_same_file_in_another_organization_is_separate(alice, mallory):
    upload(alice, b"Refunds take five days.", "refunds.txt")
    upload(mallory, b"Refunds take five days.", "refunds.txt")
    assert Document.objects.count() == 2


def test_reingesting_unchanged_text_embeds_nothing(alice):
    embedder = CountingEmbedder()
    document = ingested(alice, long_markdown(3), "handbook.md", embedder=embedder)
    first_texts = embedder.texts
    assert first_texts == document.chunk_count

    services.reingest_document(actor=alice, document_id=document.pk)
    services.ingest_document(document.pk, embedder=embedder)

    document.refresh_from_db()
    assert document.status == DocumentStatus.READY
    assert embedder.texts == first_texts  # all from the cache
    assert EmbeddingCacheEntry.objects.count() == document.chunk_count


@pytest.mark.parametrize("fail_after_calls", [0, 1])
def test_a_worker_killed_mid_ingestion_leaves_one_complete_set_after_the_retry(
    alice, fail_after_calls, settings
):
    settings.CHUNK_TARGET_TOKENS = 60
    document = upload(alice, long_markdown(6), "handbook.md")
    services.EMBED_BATCH, saved = 16, services.EMBED_BATCH
    try:
        with pytest.raises(SystemExit):
            services.ingest_document(document.pk, embedder=CountingEmbedder(fail_after_calls))
        assert Chunk.objects.filter(document=document).count() == 0  # nothing half-written
        document.refresh_from_db()
        assert document.status == DocumentStatus.EMBEDDING

        services.ingest_document(document.pk, embedder=CountingEmbedder())
    finally:
        services.EMBED_BATCH = saved
    document.refresh_from_db()
    ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
    assert document.status == DocumentStatus.READY
    assert ordinals == list(range(document.chunk_count))


def test_a_finished_document_redelivered_is_left_alone(alice):
    embedder = CountingEmbedder()
    document = ingested(alice, b"Refunds take five days.", "refunds.txt", embedder=embedder)
    calls = embedder.calls
    services.ingest_document(document.pk, embedder=embedder)
    assert embedder.calls == calls
    assert Chunk.objects.filter(document=document).count() == document.chunk_count


@pytest.mark.parametrize(
    ("make", "name", "reason"),
    [
        (lambda: samples.make_pdf([["Secret"]], password="pw"), "secret.pdf", "password-protected"),
        (lambda: samples.make_pdf([[]]), "scan.pdf", "scanned images"),
        (lambda: samples.make_zip_bomb(300), "bomb.docx", "ZIP bomb"),
        (lambda: samples.make_docx([]), "empty.docx", "No text found"),
        (lambda: samples.SCRIPT_ONLY_HTML.encode(), "page.html", "No text found"),
    ],
)
def test_unreadable_documents_end_failed_with_a_reason_and_no_chunks(alice, make, name, reason):
    document = ingested(alice, make(), name)
    assert document.status == DocumentStatus.FAILED
    assert reason in document.error
    assert not Chunk.objects.filter(document=document).exists()


def test_filenames_are_sanitized_and_never_used_as_paths(alice):
    document = upload(alice, b"Plain words.", "../../etc/\x07pass\x00wd.txt")
    assert document.original_filename == "passwd.txt"
    assert ".." not in document.file.name
    assert "passwd" not in document.file.name
    assert document.file.name.startswith(f"documents/{alice.organization_id}/")


def test_deleting_removes_chunks_and_the_file(alice, django_capture_on_commit_callbacks):
    document = ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")
    storage, name = document.file.storage, document.file.name
    assert storage.exists(name)

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_document(actor=alice, document_id=document.pk)

    assert not storage.exists(name)
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(document_id=document.pk).exists()


def test_learners_and_other_organizations_cannot_manage_documents(alice, bob, mallory):
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    document = upload(alice, b"Refunds take five days.", "refunds.txt")
    with pytest.raises(PermissionDenied):
        upload(bob, b"Learner upload", "x.txt")
    with pytest.raises(Http404):
        services.delete_document(actor=mallory, document_id=document.pk)
    with pytest.raises(Http404):
        services.reingest_document(actor=mallory, document_id=document.pk)
    assert Document.objects.filter(pk=document.pk).exists()
