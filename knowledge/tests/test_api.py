"""The knowledge API: upload answers at once, clear errors, search with citations, scoped."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge.models import Document, DocumentStatus
from knowledge.tests import samples
from knowledge.tests.factories import ingested

pytestmark = pytest.mark.django_db


def post_file(client, name, data, **extra):
    return client.post(
        "/api/v1/knowledge/documents/",
        {"file": SimpleUploadedFile(name, data), **extra},
        format="multipart",
    )


def test_an_upload_answers_at_once_with_the_queued_document(api_as, alice):
    response = post_file(
        api_as(alice), "warranty.md", samples.WARRANTY_MARKDOWN.encode(), collection="Products"
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["collection"] == "Products"
    assert body["format"] == "markdown"
    assert Document.objects.get(pk=body["id"]).status == DocumentStatus.QUEUED


def test_the_same_file_again_answers_with_the_existing_document(api_as, alice):
    client = api_as(alice)
    first = post_file(client, "a.txt", b"Refunds in five days.").json()
    again = post_file(client, "b.txt", b"Refunds in five days.")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["duplicate"] is True


def test_an_unsupported_type_is_a_415_listing_accepted_types(api_as, alice):
    response = post_file(api_as(alice), "photo.pdf", samples.PNG_BYTES)
    assert response.status_code == 415
    message = response.json()["error"]["message"]
    assert "PNG image" in message
    assert "Word (.docx)" in message
    assert not Document.objects.exists()


def test_a_file_named_for_another_type_is_a_415_saying_both(api_as, alice):
    response = post_file(api_as(alice), "x.pdf", samples.RETURNS_POLICY_HTML.encode())
    assert response.status_code == 415
    assert response.json()["error"]["message"].startswith(
        "The file is named .pdf but its content is HTML."
    )
    assert not Document.objects.exists()


def test_an_oversized_upload_is_a_413(api_as, alice, settings):
    settings.DOCUMENT_MAX_BYTES = 1000
    response = post_file(api_as(alice), "big.txt", b"word " * 400)
    assert response.status_code == 413
    assert "1,000 bytes" in response.json()["error"]["message"]
    assert not Document.objects.exists()


def test_a_learner_cannot_upload_list_or_search(api_as, bob):
    client = api_as(bob)
    assert post_file(client, "a.txt", b"hello").status_code == 403
    assert client.get("/api/v1/knowledge/documents/").status_code == 403
    search = client.post("/api/v1/knowledge/search/", {"query": "refunds"}, format="json")
    assert search.status_code == 403
    assert not Document.objects.exists()


def test_search_returns_cited_passages(api_as, alice):
    document = ingested(alice, samples.RETURNS_POLICY_HTML.encode(), "policies.html")
    response = api_as(alice).post(
        "/api/v1/knowledge/search/", {"query": "can I send back a product?"}, format="json"
    )
    assert response.status_code == 200
    top = response.json()["passages"][0]
    assert top["document_id"] == document.pk
    assert top["document_title"] == "policies"
    assert top["heading_path"].endswith("Returns")
    assert "30 days" in top["text"]


def test_search_with_another_organizations_document_id_is_a_400(api_as, alice, mallory):
    theirs = ingested(mallory, b"Globex secret.", "secret.txt")
    response = api_as(alice).post(
        "/api/v1/knowledge/search/",
        {"query": "secret", "document_ids": [theirs.pk]},
        format="json",
    )
    assert response.status_code == 400
    assert "document_ids" in response.json()["error"]["fields"]


def test_an_empty_question_is_a_400(api_as, alice):
    response = api_as(alice).post("/api/v1/knowledge/search/", {"query": "   "}, format="json")
    assert response.status_code == 400
    assert "query" in response.json()["error"]["fields"]


def test_delete_and_reingest(api_as, alice):
    document = ingested(alice, b"Refunds in five days.", "refunds.txt")
    client = api_as(alice)
    reingest = client.post(f"/api/v1/knowledge/documents/{document.pk}/reingest/")
    assert reingest.status_code == 202
    assert reingest.json()["status"] == "queued"
    assert client.delete(f"/api/v1/knowledge/documents/{document.pk}/").status_code == 204
    assert client.get(f"/api/v1/knowledge/documents/{document.pk}/").status_code == 404


def test_an_api_key_can_upload_for_its_organization(api_client, acme):
    from accounts.tests.factories import make_api_key

    _, key = make_api_key(acme)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = post_file(api_client, "faq.txt", b"Opening hours are nine to five.")
    assert response.status_code == 202
    assert Document.objects.get().organization == acme
