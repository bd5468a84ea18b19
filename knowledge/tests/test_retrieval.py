"""Hybrid retrieval: cited passages, scoped in SQL, per organization, cached until things change."""

import pytest
from django.core.cache import cache
from prometheus_client import REGISTRY

from knowledge import services
from knowledge.embeddings import get_embedder
from knowledge.retrieval import (
    InvalidQuery,
    KnowledgeScope,
    _document_matches,
    retrieve_passages,
)
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


class SameVectorEmbedder:
    """Every text gets the same vector, so only the word signals can order the passages."""

    model_id = "test/same-vector"

    def __init__(self, dimensions):
        self.dimensions = dimensions

    def embed(self, texts):
        return [[1.0] + [0.0] * (self.dimensions - 1) for _ in texts]


EXIT_HANDLERS_MD = """# Exit handlers

Register a cleanup function and it runs when the program exits normally.

## Order

Cleanup functions registered for exit run in reverse order when the program exits.
"""

GRAB_BAG_MD = "# Grab bag\n\n" + "\n\n".join(
    [f"## Topic {n}\n\nColours, trains, recipes and gardening tips, note {n}." for n in range(6)]
    + ["## Odds and ends\n\nSome cleanup code may run when the program exits."]
)


@pytest.fixture
def same_vector(settings):
    settings.CHUNK_TARGET_TOKENS = 30
    settings.CHUNK_OVERLAP_TOKENS = 0
    return SameVectorEmbedder(get_embedder().dimensions)


def test_a_document_about_the_question_words_outranks_one_that_mentions_them(alice, same_vector):
    focused = ingested(alice, EXIT_HANDLERS_MD.encode(), "exits.md", embedder=same_vector)
    grab_bag = ingested(alice, GRAB_BAG_MD.encode(), "grab-bag.md", embedder=same_vector)
    assert grab_bag.chunk_count > focused.chunk_count > 1
    query = "run cleanup code when my program exits"

    scores = _document_matches(alice.organization_id, query, [focused.pk, grab_bag.pk])
    assert scores[focused.pk] > scores[grab_bag.pk] > 0

    passages = retrieve_passages(
        organization_id=alice.organization_id,
        query=query,
        limit=3,
        embedder=same_vector,
        use_cache=False,
        lexical_weight=0.0,
        fusion="score",
    )
    # Equal cosine similarity everywhere: the document-level word match decides.
    assert passages[0].document_id == focused.pk
    by_document = {}
    for passage in passages:
        by_document.setdefault(passage.document_id, passage.score)
    assert by_document[focused.pk] > by_document.get(grab_bag.pk, 0)


def test_document_matches_ignore_documents_without_the_words_and_other_organizations(
    alice, mallory, same_vector
):
    focused = ingested(alice, EXIT_HANDLERS_MD.encode(), "exits.md", embedder=same_vector)
    unrelated = ingested(alice, b"Colours and trains only.", "other.txt", embedder=same_vector)
    theirs = ingested(mallory, EXIT_HANDLERS_MD.encode(), "exits.md", embedder=same_vector)
    candidates = [focused.pk, unrelated.pk, theirs.pk]
    scores = _document_matches(alice.organization_id, "cleanup when the program exits", candidates)
    assert set(scores) == {focused.pk}
    assert _document_matches(alice.organization_id, "cleanup", []) == {}


def test_a_long_text_is_bounded_for_retrieval_at_a_word_boundary():
    from knowledge.retrieval import MAX_QUERY_CHARS, bounded_query

    text = "warranty " * 500
    bounded = bounded_query(text)
    assert len(bounded) <= MAX_QUERY_CHARS
    assert bounded.split() == ["warranty"] * len(bounded.split())
    assert bounded_query("  How long  is the\nwarranty? ") == "How long is the warranty?"
