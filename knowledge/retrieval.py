"""Hybrid retrieval: pgvector nearest neighbours fused with PostgreSQL full-text ranks.

Candidates are filtered by organization and scope inside SQL. The HNSW scan is
iterative (pgvector 0.8), so a narrow scope still fills its candidate list instead of
being starved by the filter. By default (`RETRIEVAL_FUSION=score`) the vector candidates
are re-ranked by cosine similarity, plus a small weight times their passage's full-text
rank, plus a weight times how well their whole *document* matches the question's words
(BM25 over the document's passages, `_document_matches`); reciprocal rank fusion with a
separate full-text list (`rrf`) is kept for comparison. Measured on our evaluation sets
(BENCHMARKS.md), plain any-term full text of one passage is much weaker than vectors and
RRF let it push good vector hits down, while the document-level word match is the lexical
signal that adds to the vectors. Results are cached in Redis per (organization, knowledge
version, scope, mode, normalized query).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import structlog
from django.conf import settings
from django.db import connection, transaction
from prometheus_client import Counter, Histogram

from core.errors import Refused
from core.redis_clients import RedisUnavailable, fail_fast_cache
from knowledge.embeddings import Embedder, get_embedder
from knowledge.services import knowledge_version

Mode = Literal["hybrid", "vector", "text"]
logger = structlog.get_logger(__name__)
RRF_K = 60
# Weight of the document-level word match in score fusion (0 turns it off), and the usual
# BM25 constants; chosen on the first evaluation set, see BENCHMARKS.md.
DOCUMENT_WEIGHT = 0.15
BM25_K1, BM25_B = 1.2, 0.75
MAX_QUERY_CHARS = 2000
MARK_START, MARK_END = "\x02", "\x03"

RETRIEVAL_CACHE = Counter(
    "avatar_adam_retrieval_cache_total", "Retrieval cache lookups", ["result"]
)
RETRIEVAL_SECONDS = Histogram(
    "avatar_adam_retrieval_seconds",
    "Retrieval time, cache misses only",
    ["part"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class InvalidQuery(Refused):
    """The question is empty or too long (a refusal about the `query` field)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fields={"query": [message]})


@dataclass(frozen=True)
class KnowledgeScope:
    """Which part of an organization's knowledge base to search; empty means all of it."""

    collections: tuple[str, ...] = ()
    document_ids: tuple[int, ...] = ()

    @property
    def is_everything(self) -> bool:
        return not self.collections and not self.document_ids

    def cache_part(self) -> str:
        return (
            "c=" + ",".join(sorted(self.collections))
            + ";d=" + ",".join(str(i) for i in sorted(self.document_ids))
        )  # fmt: skip


@dataclass
class Passage:
    chunk_id: int
    document_id: int
    document_title: str
    page: int | None
    heading_path: str
    text: str
    snippet_html: str  # the passage's text, HTML-escaped, query terms wrapped in <mark>
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None
    why: list[str] = field(default_factory=list)


def normalize_query(query: str) -> str:
    return re.sub(r"\s+", " ", (query or "").strip().lower())


def bounded_query(text: str) -> str:
    """`text` (e.g. a trainer question, up to MESSAGE_MAX_CHARS) as a retrieval query: at most
    MAX_QUERY_CHARS, cut at a word. Its start decides, as it would anyway: the embedding
    model reads only a question's first 256 tokens."""
    text = re.sub(r"\s+", " ", text or "").strip()
    if len(text) <= MAX_QUERY_CHARS:
        return text
    return text[: MAX_QUERY_CHARS + 1].rsplit(" ", 1)[0][:MAX_QUERY_CHARS]


def _scope_sql(scope: KnowledgeScope) -> tuple[str, list[Any]]:
    if scope.is_everything:
        return "", []
    return (
        " AND (c.collection = ANY(%s) OR c.document_id = ANY(%s))",
        [list(scope.collections), list(scope.document_ids)],
    )


def _vector_candidates(
    organization_id: int, vector: list[float], scope: KnowledgeScope, limit: int
) -> list[int]:
    scope_sql, scope_params = _scope_sql(scope)
    literal = _vector_literal(vector)
    with transaction.atomic(), connection.cursor() as cursor:
        ef_search = int(max(settings.RETRIEVAL_EF_SEARCH, limit))
        cursor.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(
            "WITH nearest AS MATERIALIZED ("
            "  SELECT c.id, c.embedding <=> %s::vector AS distance FROM knowledge_chunk c"
            "  WHERE c.organization_id = %s AND c.embedding IS NOT NULL" + scope_sql
            + "  ORDER BY c.embedding <=> %s::vector LIMIT %s"
            ") SELECT id FROM nearest ORDER BY distance",
            [literal, organization_id, *scope_params, literal, limit],
        )  # fmt: skip
        return [row[0] for row in cursor.fetchall()]


def _any_term_query_sql() -> str:
    # plainto_tsquery ANDs the terms; OR them so a question phrased in other words still
    # matches passages that share only some of its terms.
    return "to_tsquery('english', replace(plainto_tsquery('english', %s)::text, '&', '|'))"


def _text_candidates(
    organization_id: int, query: str, scope: KnowledgeScope, limit: int
) -> list[int]:
    scope_sql, scope_params = _scope_sql(scope)
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH q AS (SELECT " + _any_term_query_sql() + " AS query) "
            "SELECT c.id FROM knowledge_chunk c, q"
            " WHERE c.organization_id = %s AND c.search_vector @@ q.query" + scope_sql
            + " ORDER BY ts_rank_cd(c.search_vector, q.query, 1) DESC, c.id LIMIT %s",
            [query, organization_id, *scope_params, limit],
        )  # fmt: skip
        return [row[0] for row in cursor.fetchall()]


def _vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{value:.7f}" for value in vector) + "]"


class Ranked(NamedTuple):
    """A candidate passage, its fused score, and where each signal placed it."""

    chunk_id: int
    score: float
    vector_rank: int | None
    text_rank: int | None
    document_rank: int | None = None  # its document among the candidates' documents


def _fuse(vector_ids: list[int], text_ids: list[int], lexical_weight: float) -> list[Ranked]:
    scores: dict[int, float] = {}
    vector_rank = {chunk_id: rank for rank, chunk_id in enumerate(vector_ids, start=1)}
    text_rank = {chunk_id: rank for rank, chunk_id in enumerate(text_ids, start=1)}
    for chunk_id, rank in vector_rank.items():
        scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    for chunk_id, rank in text_rank.items():
        scores[chunk_id] = scores.get(chunk_id, 0.0) + lexical_weight / (RRF_K + rank)
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [Ranked(cid, score, vector_rank.get(cid), text_rank.get(cid)) for cid, score in ordered]


def _document_matches(
    organization_id: int, query: str, document_ids: list[int]
) -> dict[int, float]:
    """How well each document as a whole matches the question's words: BM25 with a term's
    frequency in a document counted as the number of its passages that contain the term,
    and the document's length as its number of passages (average over the organization's
    ready documents). No inverse document frequency: counting, per query, the documents
    that hold a common word over the whole organization cost more than the rest of the
    query together, and it made little difference on our evaluation sets.

    A passage from a document that is about the question's words (a short page on
    `atexit` for "run cleanup code when my program exits") is more likely to answer it
    than an equally similar passage from a page that mentions them once. The work is
    bounded by the passages of the candidates' documents, found through the
    document_id index.
    """
    if not document_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH terms AS (SELECT DISTINCT unnest(tsvector_to_array("
            "  to_tsvector('english', %s))) AS lexeme),"
            " counts AS (SELECT c.document_id, t.lexeme, count(*) AS passages"
            "  FROM knowledge_chunk c JOIN terms t"
            "  ON c.search_vector @@ quote_literal(t.lexeme)::tsquery"
            "  WHERE c.organization_id = %s AND c.document_id = ANY(%s)"
            "  GROUP BY c.document_id, t.lexeme)"
            " SELECT counts.document_id, d.chunk_count, counts.passages,"
            " (SELECT avg(chunk_count) FROM knowledge_document"
            "  WHERE organization_id = %s AND status = 'ready')"
            " FROM counts JOIN knowledge_document d ON d.id = counts.document_id",
            [query, organization_id, document_ids, organization_id],
        )
        scores: dict[int, float] = {}
        for document_id, length, passages, average in cursor.fetchall():
            norm = 1 - BM25_B + BM25_B * (length or 1) / float(average or 1)
            tf_part = passages * (BM25_K1 + 1) / (passages + BM25_K1 * norm)
            scores[document_id] = scores.get(document_id, 0.0) + tf_part
    return scores


def _score_fuse(
    organization_id: int,
    vector: list[float],
    query: str,
    vector_ids: list[int],
    lexical_weight: float,
    document_weight: float = DOCUMENT_WEIGHT,
) -> list[Ranked]:
    """Re-rank the vector candidates by cosine similarity plus `lexical_weight` times their
    full-text rank and `document_weight` times their document's word match
    (`_document_matches`), each scaled to the best among the candidates.

    Measured on our evaluation set this is the fusion that earns its place: reciprocal
    rank fusion with a separate any-term full-text list let noisy word matches push good
    vector hits out of the top five, and ranking the full-text list over the whole
    organization was the slowest part of the query.
    """
    if not vector_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH q AS (SELECT " + _any_term_query_sql() + " AS query) "
            "SELECT c.id, 1 - (c.embedding <=> %s::vector),"
            " ts_rank_cd(c.search_vector, q.query, 1), c.document_id"
            " FROM knowledge_chunk c, q WHERE c.organization_id = %s AND c.id = ANY(%s)",
            [query, _vector_literal(vector), organization_id, vector_ids],
        )
        rows = cursor.fetchall()
    features = {row[0]: (float(row[1] or 0.0), float(row[2] or 0.0)) for row in rows}
    document_of = {row[0]: row[3] for row in rows}
    documents: dict[int, float] = {}
    if document_weight:
        documents = _document_matches(organization_id, query, sorted(set(document_of.values())))
    best_document = max(documents.values(), default=0.0) or 1.0
    best_lexical = max((lexical for _, lexical in features.values()), default=0.0) or 1.0
    vector_rank = {chunk_id: rank for rank, chunk_id in enumerate(vector_ids, start=1)}
    lexical_order = sorted(
        (cid for cid, (_, lexical) in features.items() if lexical > 0),
        key=lambda cid: -features[cid][1],
    )
    text_rank = {chunk_id: rank for rank, chunk_id in enumerate(lexical_order, start=1)}
    scored = [
        (
            chunk_id,
            similarity
            + lexical_weight * lexical / best_lexical
            + document_weight * documents.get(document_of[chunk_id], 0.0) / best_document,
        )
        for chunk_id, (similarity, lexical) in features.items()
    ]
    scored.sort(key=lambda item: (-item[1], item[0]))
    document_order = sorted((d for d, score in documents.items() if score > 0),
                            key=lambda d: -documents[d])  # fmt: skip
    document_rank = {document: rank for rank, document in enumerate(document_order, start=1)}
    return [
        Ranked(cid, score, vector_rank.get(cid), text_rank.get(cid),
               document_rank.get(document_of[cid]))
        for cid, score in scored
    ]  # fmt: skip


def _load_passages(ranked: list[Ranked], query: str) -> list[Passage]:
    if not ranked:
        return []
    ids = [chunk_id for chunk_id, *_ in ranked]
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH q AS (SELECT " + _any_term_query_sql() + " AS query) "
            "SELECT c.id, c.document_id, d.title, c.page, c.heading_path, c.text,"
            # Escape before ts_headline: its parser drops anything that looks like a tag.
            " ts_headline('english', replace(replace(replace(c.text, '&', '&amp;'),"
            " '<', '&lt;'), '>', '&gt;'), q.query, %s)"
            " FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id, q"
            " WHERE c.id = ANY(%s)",
            [
                query,
                f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=45, MinWords=20, "
                'MaxFragments=2, FragmentDelimiter=" … "',
                ids,
            ],
        )
        rows = {row[0]: row for row in cursor.fetchall()}
    passages = []
    for chunk_id, score, vector_rank, text_rank, document_rank in ranked:
        row = rows.get(chunk_id)
        if row is None:
            continue  # deleted between the two queries
        _, document_id, title, page, heading, text, headline = row
        # The text was escaped in SQL; only our own markers become markup.
        snippet = headline.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
        why = []
        if vector_rank:
            why.append(f"meaning match #{vector_rank}")
        if text_rank:
            why.append(f"word match #{text_rank}")
        if document_rank:
            why.append(f"its document matches the question's words #{document_rank}")
        passages.append(
            Passage(
                chunk_id=chunk_id,
                document_id=document_id,
                document_title=title,
                page=page,
                heading_path=heading,
                text=text,
                snippet_html=snippet,
                score=round(score, 6),
                vector_rank=vector_rank,
                text_rank=text_rank,
                why=why,
            )
        )
    return passages


def retrieve_passages(
    *,
    organization_id: int,
    query: str,
    scope: KnowledgeScope | None = None,
    limit: int = 5,
    mode: Mode = "hybrid",
    embedder: Embedder | None = None,
    use_cache: bool = True,
    lexical_weight: float | None = None,
    fusion: str | None = None,
    document_weight: float = DOCUMENT_WEIGHT,
) -> list[Passage]:
    """The passages of the organization's knowledge (within `scope`) that best answer `query`.

    Raises InvalidQuery for an empty or overlong question.
    """
    scope = scope or KnowledgeScope()
    normalized = normalize_query(query)
    if not normalized:
        raise InvalidQuery("Ask a question: the query is empty.")
    if len(normalized) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"The question is too long: the limit is {MAX_QUERY_CHARS} characters.")
    weight = settings.RETRIEVAL_LEXICAL_WEIGHT if lexical_weight is None else lexical_weight
    fusion = fusion or settings.RETRIEVAL_FUSION
    key = ""
    if use_cache:
        digest = hashlib.sha256(normalized.encode()).hexdigest()[:32]
        scope_digest = hashlib.sha256(scope.cache_part().encode()).hexdigest()[:16]
        try:
            key = (
                f"retrieval:{organization_id}:{knowledge_version(organization_id)}:{mode}"
                f":{limit}:{fusion}:{weight}:{document_weight}:{scope_digest}:{digest}"
            )
            cached = fail_fast_cache.get(key)
        except RedisUnavailable as exc:  # answer from the database, uncached
            logger.warning("retrieval_cache_unavailable", error=str(exc))
            use_cache, cached = False, None
        if cached is not None:
            RETRIEVAL_CACHE.labels("hit").inc()
            return [Passage(**item) for item in cached]
        RETRIEVAL_CACHE.labels("miss").inc()
    candidates = max(settings.RETRIEVAL_CANDIDATES, limit)
    vector_ids: list[int] = []
    text_ids: list[int] = []
    vector: list[float] = []
    if mode in ("hybrid", "vector"):
        started = time.perf_counter()
        vector = (embedder or get_embedder()).embed([normalized])[0]
        RETRIEVAL_SECONDS.labels("embed").observe(time.perf_counter() - started)
        started = time.perf_counter()
        vector_ids = _vector_candidates(organization_id, vector, scope, candidates)
        RETRIEVAL_SECONDS.labels("vector_sql").observe(time.perf_counter() - started)
    if mode == "text" or (mode == "hybrid" and fusion == "rrf"):
        started = time.perf_counter()
        text_ids = _text_candidates(organization_id, normalized, scope, candidates)
        RETRIEVAL_SECONDS.labels("text_sql").observe(time.perf_counter() - started)
    if mode == "hybrid" and fusion == "score":
        ranked = _score_fuse(
            organization_id, vector, normalized, vector_ids, weight, document_weight
        )
    else:
        ranked = _fuse(vector_ids, text_ids, weight)
    ranked = ranked[:limit]
    passages = _load_passages(ranked, normalized)
    if use_cache:
        try:
            fail_fast_cache.set(
                key, [asdict(p) for p in passages], settings.RETRIEVAL_CACHE_SECONDS
            )
        except RedisUnavailable as exc:
            logger.warning("retrieval_cache_unavailable", error=str(exc))
    return passages
