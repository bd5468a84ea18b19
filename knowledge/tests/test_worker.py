"""Ingestion through a real Celery worker and the real Redis broker (no eager mode)."""

import time

import pytest
from celery import current_app
from celery.contrib.testing.worker import start_worker
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge.models import Chunk, Document, DocumentStatus
from knowledge.tests import samples

app = current_app._get_current_object()  # the project app (avatar_adam/celery.py)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def celery_worker():
    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10
    ):
        yield


def wait_for(document_id, statuses, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        document = Document.objects.get(pk=document_id)
        if document.status in statuses:
            return document
        time.sleep(0.2)
    raise AssertionError(f"document stayed {document.status}")


def test_an_upload_is_ingested_by_the_worker(celery_worker, api_as, alice):
    response = api_as(alice).post(
        "/api/v1/knowledge/documents/",
        {"file": SimpleUploadedFile("warranty.md", samples.WARRANTY_MARKDOWN.encode())},
        format="multipart",
    )
    assert response.status_code == 202
    assert response.json()["status"] == "queued"

    document = wait_for(response.json()["id"], {DocumentStatus.READY, DocumentStatus.FAILED})

    assert document.status == DocumentStatus.READY
    assert Chunk.objects.filter(document=document).count() == document.chunk_count > 0


def test_a_broken_upload_ends_failed_through_the_worker(celery_worker, api_as, alice):
    response = api_as(alice).post(
        "/api/v1/knowledge/documents/",
        {"file": SimpleUploadedFile("scan.pdf", samples.make_pdf([[]]))},
        format="multipart",
    )
    document = wait_for(response.json()["id"], {DocumentStatus.READY, DocumentStatus.FAILED})
    assert document.status == DocumentStatus.FAILED
    assert "scanned images" in document.error


def _worker_env(visibility_timeout):
    import os

    from conftest import database_url_for_processes

    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url_for_processes(),
        CELERY_VISIBILITY_TIMEOUT=str(visibility_timeout),
        LOG_LEVEL="WARNING",
    )
    return env


def _start_worker(env):
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "avatar_adam", "worker", "--pool", "solo",
         "-Q", ",".join(settings.TASK_QUEUE_NAMES),
         "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_worker_killed_mid_embedding_loses_nothing_and_duplicates_nothing(api_as, alice):
    """SIGKILL the worker while it embeds; a new worker redoes the task: one complete set."""
    import signal

    paragraphs = "\n\n".join(
        f"Policy {i}: " + " ".join(f"clause{i}x{j} applies to order type {j}." for j in range(40))
        for i in range(120)
    )
    env = _worker_env(visibility_timeout=4)
    first = _start_worker(env)
    second = None
    try:
        response = api_as(alice).post(
            "/api/v1/knowledge/documents/",
            {"file": SimpleUploadedFile("policies.txt", paragraphs.encode())},
            format="multipart",
        )
        document_id = response.json()["id"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            document = Document.objects.get(pk=document_id)
            if document.status == DocumentStatus.EMBEDDING and document.progress >= 45:
                break
            time.sleep(0.05)
        assert document.status == DocumentStatus.EMBEDDING, document.status
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert Chunk.objects.filter(document_id=document_id).count() == 0

        time.sleep(5)  # past the visibility timeout, so the unacknowledged task is re-delivered
        second = _start_worker(env)
        document = wait_for(document_id, {DocumentStatus.READY, DocumentStatus.FAILED}, 120)
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                process.terminate()
                process.wait(20)
    assert document.status == DocumentStatus.READY
    ordinals = list(
        Chunk.objects.filter(document_id=document_id)
        .order_by("ordinal")
        .values_list("ordinal", flat=True)
    )
    assert ordinals == list(range(document.chunk_count))
    assert document.attempts == 2
