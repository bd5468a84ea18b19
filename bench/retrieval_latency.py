"""Retrieval latency at 100k+ chunks: SQL only, with query embedding, and from the cache.

    .venv/bin/python bench/retrieval_eval.py        # first: ingests the corpus (var/bench)
    .venv/bin/python bench/retrieval_latency.py

Synthesizes the corpus into nine more organizations by copying its chunks in SQL (so the
table holds ~113k chunks, the HNSW index covering all of them), then times the 70
evaluation questions against the original organization: the SQL part (vector and
full-text candidates, fusion features, passages with snippets), the whole call including
the query embedding, and a cached call.
"""

from __future__ import annotations

import statistics
import time

from bench_setup import BASE_DIR

COPIES = 9


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def synthesize(source_slug: str) -> None:
    from django.db import connection, transaction

    from accounts.models import Organization
    from knowledge.models import Chunk, Document

    source = Organization.objects.get(slug=source_slug)
    for copy in range(1, COPIES + 1):
        organization, created = Organization.objects.get_or_create(
            slug=f"{source_slug}-copy{copy}", defaults={"name": f"copy {copy}"}
        )
        if not created and Chunk.objects.filter(organization=organization).exists():
            continue
        with transaction.atomic():
            holder = Document.objects.create(
                organization=organization, title="synthetic copy", original_filename="copy",
                file="synthetic", format="text", content_type="text/plain", size_bytes=0,
                sha256=f"synthetic-{copy}", status="ready",
            )  # fmt: skip
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO knowledge_chunk (document_id, organization_id, collection,"
                    " ordinal, text, heading_path, page, token_count, embedding, search_vector)"
                    " SELECT %s, %s, collection, row_number() OVER (ORDER BY id), text,"
                    " heading_path, page, token_count, embedding, search_vector"
                    " FROM knowledge_chunk WHERE organization_id = %s",
                    [holder.pk, organization.pk, source.pk],
                )
        print(f"copied the corpus into organization {organization.slug}")


def main() -> None:
    import json

    import django

    django.setup()
    from django.db import connection

    from knowledge.embeddings import get_embedder
    from knowledge.retrieval import retrieve_passages
    from knowledge.services import bump_knowledge_version

    slug = "bench-pydocs-220"
    synthesize(slug)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
        cursor.execute("SELECT count(*) FROM knowledge_chunk")
        total = cursor.fetchone()[0]
    from accounts.models import Organization

    organization = Organization.objects.get(slug=slug)
    questions = [
        q["question"]
        for q in json.loads((BASE_DIR / "bench/data/python_docs_eval.json").read_text())[
            "questions"
        ]
    ]
    embedder = get_embedder()
    vectors = embedder.embed([q.lower() for q in questions])  # warm the model

    class Precomputed:
        model_id, dimensions = embedder.model_id, embedder.dimensions

        def __init__(self, vector: list[float]) -> None:
            self.vector = vector

        def embed(self, texts: list[str]) -> list[list[float]]:
            return [self.vector]

    bump_knowledge_version(organization.pk)
    for question, vector in zip(questions[:5], vectors, strict=False):  # warm caches
        retrieve_passages(organization_id=organization.pk, query=question,
                          embedder=Precomputed(vector), use_cache=False)  # fmt: skip
    sql, whole, cached = [], [], []
    for question, vector in zip(questions, vectors, strict=True):
        started = time.perf_counter()
        retrieve_passages(organization_id=organization.pk, query=question,
                          embedder=Precomputed(vector), use_cache=False)  # fmt: skip
        sql.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        retrieve_passages(organization_id=organization.pk, query=question)
        whole.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        retrieve_passages(organization_id=organization.pk, query=question)
        cached.append((time.perf_counter() - started) * 1000)
    print(f"\n{total} chunks in the table, {len(questions)} questions, hybrid score fusion")
    for label, values, target in (
        ("SQL part (no embedding)", sql, 20),
        ("with query embedding", whole, 50),
        ("cached", cached, 5),
    ):
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        verdict = "meets" if p95 < target else "MISSES"
        print(f"{label:<26} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({verdict} p95 < {target} ms)")


if __name__ == "__main__":
    main()
