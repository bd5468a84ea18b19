"""Ingestion progress pushed to the manager's page as server-sent events."""

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from knowledge import progress

pytestmark = pytest.mark.django_db(transaction=True)


def first_progress_event(user, organization_id_to_publish):
    """Open the event stream as `user`, keep publishing a progress event for
    `organization_id_to_publish` until the stream yields one (or 3 s of heartbeats)."""

    async def read():
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get("/knowledge/events/")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        stop = threading.Event()

        def keep_publishing():
            while not stop.wait(0.1):
                progress.publish(organization_id_to_publish, 42, "embedding", 57)

        publisher = threading.Thread(target=keep_publishing, daemon=True)
        publisher.start()
        seen = []
        try:
            async for chunk in response.streaming_content:
                text = chunk.decode() if isinstance(chunk, bytes) else chunk
                seen.append(text)
                if text.startswith("event: progress"):
                    return text
                if len(seen) > 3:
                    return None
        finally:
            stop.set()
        return None

    return run_in_own_thread(read)


def run_in_own_thread(coroutine_function):
    # The browser tests' Playwright keeps an event loop on the main thread, so async code
    # under test gets a thread (and a loop) of its own.
    async def and_close():
        try:
            return await coroutine_function()
        finally:
            # The ORM's calls ran on asgiref's sync thread: end its database connections
            # there, or the test database cannot be dropped at the end of the session.
            await sync_to_async(connections.close_all)()

    def run():
        try:
            return asyncio.run(and_close())
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=30)


def test_a_manager_receives_their_organizations_progress_live(alice, monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 1.0)
    event = first_progress_event(alice, alice.organization_id)
    assert event is not None
    data = json.loads(event.split("data: ", 1)[1])
    assert data == {"document_id": 42, "status": "embedding", "progress": 57}


def test_another_organizations_progress_never_arrives(alice, mallory, monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.5)
    assert first_progress_event(alice, mallory.organization_id) is None


def test_learners_cannot_follow_the_knowledge_base(bob):
    async def status():
        client = AsyncClient()
        await client.aforce_login(bob)
        return (await client.get("/knowledge/events/")).status_code

    assert run_in_own_thread(status) == 403
