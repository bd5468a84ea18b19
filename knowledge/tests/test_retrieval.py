"""Hybrid retrieval: cited passages, scoped in SQL, per organization, cached until things change."""

import pytest
from django.core.cache import cache
from prometheus_client import REGISTRY

from knowledge import services
from knowledge.retrieval import InvalidQuery, KnowledgeScope, retrieve_passages
from knowledge.tests import samples
from knowledge.tests.factories import ingested

pytestmark = pytest.mark.django_db


def cache_count(result):
    return REGISTRY.get_sample_value("avatar_adam_retrieval_cache_total", {"result": result}) or 0


@pytest.fixture
def policies(alice):
    return {
        "html": ingested(alice, samples.RETURNS_POLICY_HTML.encode(), "policies.html", "Policies"),
        "warranty": ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md", "Products"),
    }


def test_a_question_in_other_words_finds_the_answering_passage(alice, policies):
    passages = retrieve_passages(
        organization_id=alice.organization_id, query="how long can a customer send back a product?"
    )
    top = passages[0]
    assert "30 days" in top.text
    assert top.document_title == "policies"
    assert top.heading_path == "Customer policies › Returns"
    assert "<mark>" in top.snippet_html
    assert top.why


@pytest.mark.parametrize("mode", ["vector", "text", "hybrid"])
def test_every_mode_answers(alice, policies, mode):
    passages = retrieve_passages(
        organization_id=alice.organization_id,
        query="warranty batteries",
        mode=mode,
        use_cache=False,
    )
    assert any("Batteries" in p.text for p in passages)


def test_the_scope_filters_inside_the_query(alice, policies):
    scoped = retrieve_passages(
        organization_id=alice.organization_id,
        query="how long does delivery take",
        scope=KnowledgeScope(collections=("Products",)),
    )
    assert scoped
    assert {p.document_id for p in scoped} == {policies["warranty"].pk}

    by_document = retrieve_passages(
        organization_id=alice.organization_id,
        query="how long does delivery take",
        scope=KnowledgeScope(document_ids=(policies["html"].pk,)),
    )
    assert {p.document_id for p in by_document} == {policies["html"].pk}


def test_another_organizations_knowledge_is_never_returned(alice, mallory, policies):
    ingested(mallory, b"Globex refunds are paid in gold within 30 days.", "globex.txt")
    passages = retrieve_passages(
        organization_id=alice.organization_id, query="refunds paid in gold", limit=10
    )
    assert all("gold" not in p.text for p in passages)
    theirs = retrieve_passages(organization_id=mallory.organization_id, query="refunds")
    assert {p.document_title for p in theirs} == {"globex"}


def test_results_are_cached_until_the_knowledge_changes(
    alice, policies, django_capture_on_commit_callbacks
):
    query = "how long can a customer send back a product?"
    hits, misses = cache_count("hit"), cache_count("miss")
    first = retrieve_passages(organization_id=alice.organization_id, query=query)
    again = retrieve_passages(
        organization_id=alice.organization_id,
        query="  How long can a customer SEND back a product? ",
    )
    assert [p.chunk_id for p in again] == [p.chunk_id for p in first]
    assert cache_count("miss") == misses + 1
    assert cache_count("hit") == hits + 1

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_document(actor=alice, document_id=policies["html"].pk)

    after = retrieve_passages(organization_id=alice.organization_id, query=query)
    assert policies["html"].pk not in {p.document_id for p in after}
    assert cache_count("miss") == misses + 2


def test_snippets_escape_document_text(alice):
    ingested(alice, b"Use the <script>alert(1)</script> tag & never trust input.", "xss.txt")
    passages = retrieve_passages(organization_id=alice.organization_id, query="script tag")
    snippet = passages[0].snippet_html
    assert "<script" not in snippet
    assert "&gt;alert(1)&lt;/script&gt;" in snippet
    assert "<mark>tag</mark> &amp; never" in snippet


@pytest.mark.parametrize("query", ["", "   ", "x" * 2001])
def test_empty_or_overlong_questions_are_refused(alice, query):
    with pytest.raises(InvalidQuery):
        retrieve_passages(organization_id=alice.organization_id, query=query)


def test_the_cache_lives_in_redis(alice, policies):
    retrieve_passages(organization_id=alice.organization_id, query="batteries")
    client = cache._cache.get_client()
    assert any(b"retrieval:" in key for key in client.keys("*"))
