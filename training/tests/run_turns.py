"""Running async turns from synchronous tests.

Once the browser tests have started Playwright's sync API, the main thread carries an
event loop marked as running, which `async_to_sync` and `asyncio.run` refuse. These
helpers set that marker aside for the call, so a turn's database work still runs on the
test's own connection (inside its transaction).
"""

import asyncio
from contextlib import contextmanager

from asgiref.sync import async_to_sync

from training import turns


@contextmanager
def no_running_loop():
    running = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(running)


def finish_reply(reply_id):
    """Generate a reply to its end, as the web process does after a message is posted."""
    with no_running_loop():
        turns.generate_reply(reply_id)


def run(coroutine):
    """Await a coroutine from a test; its `sync_to_async` database calls come back to this
    thread (async_to_sync arranges that; asyncio.run would use another thread)."""

    async def awaited():
        return await coroutine

    with no_running_loop():
        return async_to_sync(awaited)()


def events_of(model, prompt):
    """Every event a chat model streams for a prompt (raises what the stream raises)."""

    async def collect():
        return [event async for event in model.astream(prompt)]

    return run(collect())
