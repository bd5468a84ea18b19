"""The manager's knowledge page: upload, live rows, try a question; learners kept out."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from knowledge.models import Document
from knowledge.tests import samples
from knowledge.tests.factories import ingested

pytestmark = pytest.mark.django_db


def test_a_learner_is_refused_the_knowledge_page(client, bob):
    client.force_login(bob)
    assert client.get(reverse("knowledge:documents")).status_code == 403
    upload = client.post(reverse("knowledge:upload"), {"file": SimpleUploadedFile("a.txt", b"x")})
    assert upload.status_code == 403
    assert not Document.objects.exists()


def test_an_upload_returns_a_row_that_follows_progress_until_ready(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("knowledge:upload"),
        {"file": SimpleUploadedFile("warranty.md", samples.WARRANTY_MARKDOWN.encode())},
    )
    assert response.status_code == 202
    row = response.content.decode()
    assert 'data-status="queued"' in row  # live events compare against this
    assert 'hx-trigger="every 20s"' in row  # the slow refresh if events are held back
    assert "next in line" in row  # its place in the queue, not an empty bar
    assert "<progress" not in row


def test_a_finished_row_stops_polling(client, alice):
    document = ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")
    client.force_login(alice)
    row = client.get(reverse("knowledge:document-row", args=[document.pk])).content.decode()
    assert "hx-trigger" not in row
    assert "Ready" in row


def test_upload_errors_are_plain_sentences(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("knowledge:upload"), {"file": SimpleUploadedFile("x.pdf", samples.PNG_BYTES)}
    )
    assert response.status_code == 415
    assert "PNG image" in response.content.decode()


def test_a_file_named_for_another_type_is_refused_on_the_page_and_in_the_admin(client, alice):
    client.force_login(alice)
    pdf_named_docx = samples.make_pdf([["Hello"]])
    page = client.post(
        reverse("knowledge:upload"), {"file": SimpleUploadedFile("x.docx", pdf_named_docx)}
    )
    assert page.status_code == 415
    assert "named .docx but its content is a PDF" in page.content.decode()
    admin = client.post(
        reverse("admin:knowledge_document_upload"),
        {"files": [SimpleUploadedFile("y.docx", pdf_named_docx)], "collection": ""},
        follow=True,
    )
    assert "named .docx but its content is a pdf" in admin.content.decode().lower()
    assert not Document.objects.exists()


def test_document_text_is_escaped_on_the_page(client, alice):
    ingested(
        alice, b"<img src=x onerror=alert(1)> returns take <b>30 days</b>.", "evil<script>.txt"
    )
    client.force_login(alice)
    page = client.get(reverse("knowledge:documents")).content.decode()
    assert "evil&lt;script&gt;" in page
    assert "evil<script>" not in page
    results = client.post(reverse("knowledge:search"), {"query": "img onerror"}).content.decode()
    assert "<img" not in results
    assert "<b>" not in results
    assert "&lt;b&gt;30 days" in results


def test_try_a_question_shows_passages_and_why(client, alice):
    ingested(alice, samples.RETURNS_POLICY_HTML.encode(), "policies.html")
    client.force_login(alice)
    results = client.post(reverse("knowledge:search"), {"query": "send back a product"})
    html = results.content.decode()
    assert "policies" in html
    assert "30 days" in html
    assert "meaning match #1" in html
    # A question sharing words with the document also says so.
    worded = client.post(reverse("knowledge:search"), {"query": "can I return opened items?"})
    assert "its document matches the question" in worded.content.decode()


def test_downloads_are_attachments_that_are_not_sniffed(client, alice):
    document = ingested(alice, b"<html><body><p>Hi</p></body></html>", "page.html")
    client.force_login(alice)
    response = client.get(reverse("knowledge:download", args=[document.pk]))
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/octet-stream"


def test_a_manager_uploads_several_files_at_once_in_the_admin(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("admin:knowledge_document_upload"),
        {
            "files": [
                SimpleUploadedFile("a.md", samples.WARRANTY_MARKDOWN.encode()),
                SimpleUploadedFile("b.html", samples.RETURNS_POLICY_HTML.encode()),
                SimpleUploadedFile("c.png", samples.PNG_BYTES),
            ],
            "collection": "Policies",
        },
        follow=True,
    )
    page = response.content.decode()
    assert set(Document.objects.values_list("original_filename", flat=True)) == {"a.md", "b.html"}
    assert set(Document.objects.values_list("collection", flat=True)) == {"Policies"}
    assert "c.png: this is a png image." in page.lower()  # the admin capitalises messages
    assert all(d.organization_id == alice.organization_id for d in Document.objects.all())
