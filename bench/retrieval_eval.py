"""Retrieval quality and ingestion throughput on the Python documentation (python3-doc).

    apt-get install -y python3-doc
    .venv/bin/python bench/retrieval_eval.py [--chunk-tokens 220] [--questions FILE]

Ingests the corpus listed in bench/data/python_docs_eval.json into a benchmark
organization (its own embedded servers under var/bench/, reused by later runs), through
the same services as the app (sandboxed extraction, chunking, local MiniLM embedder),
then asks every question with vector-only, full-text-only and hybrid retrieval and
prints recall@5 and MRR@10 for each, plus hybrid (reciprocal rank fusion and score
fusion) at several lexical weights, and score fusion with the document-level word match
at several weights. `--questions` asks another question file about the same corpus, e.g.
the first 70-question set: `git show a0786cd:bench/data/python_docs_eval.json > /tmp/q70.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench_setup import BASE_DIR


def setup(chunk_tokens: int) -> None:
    os.environ["CHUNK_TARGET_TOKENS"] = str(chunk_tokens)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def corpus_pages(spec: dict) -> list[Path]:
    root = Path(spec["root"])
    pages: list[Path] = []
    for entry in spec["include"]:
        path = root / entry
        pages.extend(sorted(path.rglob("*.html")) if path.is_dir() else [path])
    return pages


def ingest(spec: dict, chunk_tokens: int):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.models import Organization, Role, User
    from knowledge import services
    from knowledge.models import Document, DocumentStatus

    slug = f"bench-pydocs-{chunk_tokens}"
    organization, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug})
    manager, _ = User.objects.get_or_create(
        email=f"{slug}@bench.local", defaults={"organization": organization, "role": Role.MANAGER}
    )
    root = Path(spec["root"])
    pages = corpus_pages(spec)
    started = time.perf_counter()
    ingested_pages = 0
    for page in pages:
        relative = str(page.relative_to(root))
        result = services.upload_document(
            actor=manager,
            uploaded_file=SimpleUploadedFile(page.name, page.read_bytes()),
            title=relative,
        )
        if result.document.status != DocumentStatus.READY:
            services.ingest_document(result.document.pk)
            ingested_pages += 1
    elapsed = time.perf_counter() - started
    documents = Document.objects.filter(organization=organization)
    chunks = sum(documents.values_list("chunk_count", flat=True))
    failed = documents.filter(status=DocumentStatus.FAILED).count()
    if ingested_pages:
        print(
            f"ingested {ingested_pages} pages in {elapsed:.0f} s: "
            f"{ingested_pages / elapsed:.2f} pages/s, {chunks / elapsed:.1f} chunks/s "
            f"({chunks} chunks, {failed} failed)"
        )
    else:
        print(f"corpus already ingested: {documents.count()} pages, {chunks} chunks")
    return organization, {d.pk: d.title for d in documents}


def evaluate(
    organization,
    titles: dict[int, str],
    questions: list[dict],
    mode: str,
    weight: float,
    fusion: str = "score",
    document_weight: float = 0.0,
):
    from knowledge.retrieval import retrieve_passages

    recall5 = 0.0
    reciprocal = 0.0
    for question in questions:
        passages = retrieve_passages(
            organization_id=organization.pk,
            query=question["question"],
            limit=10,
            mode=mode,
            use_cache=False,
            lexical_weight=weight,
            fusion=fusion,
            document_weight=document_weight,
        )
        answers = set(question["answer_pages"])
        ranks = [i for i, p in enumerate(passages, start=1) if titles[p.document_id] in answers]
        if ranks and ranks[0] <= 5:
            recall5 += 1
        if ranks:
            reciprocal += 1 / ranks[0]
    return recall5 / len(questions), reciprocal / len(questions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rrf-weights", default="0.1,0.25,0.5,1.0")
    parser.add_argument("--score-weights", default="0.02,0.05,0.1,0.2")
    parser.add_argument("--document-weights", default="0.05,0.1,0.15,0.2")
    parser.add_argument("--chunk-tokens", type=int, default=220)
    parser.add_argument("--questions", type=Path, help="question file (default: the corpus's)")
    args = parser.parse_args()
    spec = json.loads((BASE_DIR / "bench/data/python_docs_eval.json").read_text())
    if not Path(spec["corpus"]["root"]).exists():
        sys.exit("The corpus is missing: apt-get install -y python3-doc")
    setup(args.chunk_tokens)
    organization, titles = ingest(spec["corpus"], args.chunk_tokens)
    questions = json.loads(args.questions.read_text())["questions"] if args.questions else None
    questions = questions or spec["questions"]
    print(f"\n{len(questions)} questions, chunk target {args.chunk_tokens} tokens")
    print(f"{'retrieval':<28} {'recall@5':>9} {'MRR@10':>8}")
    for mode, weight in [("vector", 0.0), ("text", 1.0)]:
        recall, mrr = evaluate(organization, titles, questions, mode, weight)
        print(f"{mode + '-only':<28} {recall:>9.3f} {mrr:>8.3f}")
    for fusion, weights in (("rrf", args.rrf_weights), ("score", args.score_weights)):
        for weight in [float(w) for w in weights.split(",")]:
            recall, mrr = evaluate(organization, titles, questions, "hybrid", weight, fusion)
            label = f"hybrid {fusion}, lexical {weight}"
            print(f"{label:<28} {recall:>9.3f} {mrr:>8.3f}")
    for document_weight in [float(w) for w in args.document_weights.split(",")]:
        for weight in (0.0, 0.02):
            recall, mrr = evaluate(
                organization, titles, questions, "hybrid", weight, "score", document_weight
            )
            label = f"hybrid score {weight}, doc {document_weight}"
            print(f"{label:<28} {recall:>9.3f} {mrr:>8.3f}")


if __name__ == "__main__":
    main()
