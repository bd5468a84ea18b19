"""Ingestion is fair between organizations, shows its queue, and always ends."""

import time
from datetime import timedelta

import pytest
from celery import current_app
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from knowledge import fair_queue
from knowledge.models import Document, DocumentStatus
from knowledge.tasks import UNEXPECTED, requeue_stalled_documents
from knowledge.tests.factories import upload


def _documents(actor, count, prefix):
    return [
        upload(actor, f"# {prefix} {n}\n\nSection {n} of the {prefix} manual.".encode(),
               f"{prefix}-{n}.md")
        for n in range(count)
    ]  # fmt: skip


@pytest.mark.django_db
def test_claims_take_turns_between_organizations_whatever_the_backlog(alice, mallory):
    backlog = _documents(alice, 5, "acme")
    [single] = _documents(mallory, 1, "globex")
    order = [fair_queue.claim_next() for _ in range(6)]
    assert order[:3] == [backlog[0].pk, single.pk, backlog[1].pk]
    assert sorted(order) == sorted([d.pk for d in backlog] + [single.pk])
    assert fair_queue.claim_next() is None
    assert Document.objects.get(pk=single.pk).status == DocumentStatus.EXTRACTING


@pytest.mark.django_db
def test_each_queued_document_knows_how_many_are_ahead_of_it(alice, mallory, client):
    backlog = _documents(alice, 4, "acme")
    [single] = _documents(mallory, 1, "globex")
    fair_queue.claim_next()  # acme's first is being worked on
    places = fair_queue.positions(mallory.organization_id)
    assert places[single.pk].ahead == 0  # next in line, despite acme's three waiting
    assert places[single.pk].working == 1
    acme_places = fair_queue.positions(alice.organization_id)
    assert [acme_places[d.pk].ahead for d in backlog[1:]] == [1, 2, 3]  # globex, then acme

    client.force_login(alice)
    page = client.get("/knowledge/").content.decode()
    assert "3 ahead of it" in page
    client.force_login(mallory)
    assert "next in line" in client.get("/knowledge/").content.decode()


@pytest.mark.django_db
def test_a_retried_document_waits_for_its_backoff_before_it_is_claimed(alice):
    [document] = _documents(alice, 1, "acme")
    assert fair_queue.claim_next() == document.pk
    fair_queue.retry_later(document.pk, 60)
    assert fair_queue.claim_next() is None
    Document.objects.filter(pk=document.pk).update(retry_at=timezone.now())
    assert fair_queue.claim_next() == document.pk


# --- on the real worker and broker ---------------------------------------------------------

app = current_app._get_current_object()


@pytest.fixture
def start_ingestion_worker():
    """Call to start a real Celery worker (solo pool) on the test database."""
    workers = []

    def start():
        worker = start_worker(
            app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10
        )
        worker.__enter__()
        workers.append(worker)

    yield start
    for worker in workers:
        worker.__exit__(None, None, None)


def _wait_until_finished(documents, seconds=90):
    deadline = time.monotonic() + seconds
    ids = [d.pk for d in documents]
    while time.monotonic() < deadline:
        rows = Document.objects.filter(pk__in=ids)
        if all(row.is_finished for row in rows):
            return list(rows)
        time.sleep(0.2)
    raise AssertionError("documents were not finished in time")


@pytest.mark.django_db(transaction=True)
def test_one_upload_is_not_held_behind_another_organizations_backlog(
    alice, mallory, start_ingestion_worker
):
    backlog = _documents(alice, 8, "acme")  # eight tokens on the broker first...
    [single] = _documents(mallory, 1, "globex")  # ...then globex's one, last in line
    start_ingestion_worker()
    finished = _wait_until_finished([*backlog, single])
    assert {row.status for row in finished} == {DocumentStatus.READY}
    by_start = sorted(finished, key=lambda row: row.claimed_at)
    assert [row.pk for row in by_start].index(single.pk) <= 1  # FIFO would make it 9th


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_error_ends_a_document_failed_with_a_reason(
    alice, start_ingestion_worker, monkeypatch
):
    [document] = _documents(alice, 1, "acme")

    def a_bug(*args, **kwargs):  # neither an extraction nor an embedding error
        raise RuntimeError("a bug between extraction and embedding")

    monkeypatch.setattr("knowledge.services.chunk_blocks", a_bug)
    start_ingestion_worker()  # in this process, so it runs the patched code
    [finished] = _wait_until_finished([document])
    assert finished.status == DocumentStatus.FAILED
    assert finished.error == UNEXPECTED


@pytest.mark.django_db(transaction=True)
def test_a_document_left_half_way_by_a_lost_worker_is_taken_up_again(
    alice, start_ingestion_worker, settings
):
    [document] = _documents(alice, 1, "acme")
    assert fair_queue.claim_next() == document.pk  # a worker took it, then died
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 301)
    Document.objects.filter(pk=document.pk).update(updated_at=long_ago)
    start_ingestion_worker()
    requeue_stalled_documents.delay()  # beat's sweeper, run by the worker
    [finished] = _wait_until_finished([document])
    assert finished.status == DocumentStatus.READY
