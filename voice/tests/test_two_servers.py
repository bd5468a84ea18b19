"""Two Daphne processes share the Redis channel layer: a voice call opened on one server
is taken over from the other, and the group event that closes it crosses between them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time

import pytest
import websockets

from conftest import database_url_for_processes, start_daphne, wait_for_port
from training.tests.run_turns import run
from voice.tickets import issue_ticket


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_servers(transactional_db):
    env = dict(
        os.environ,
        DATABASE_URL=database_url_for_processes(),
        LOG_LEVEL="WARNING",
        VOICE_RECHECK_SECONDS="60",
    )  # only the group event can close a call fast
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    ports = [_free_port(), _free_port()]
    processes = [start_daphne(port, env) for port in ports]
    for port in ports:
        wait_for_port(port, 60)
    try:
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


async def _until_closed(connection: websockets.ClientConnection) -> int:
    try:
        while True:
            await asyncio.wait_for(connection.recv(), 10)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006


def test_a_call_on_one_server_is_taken_over_from_the_other(two_servers, voice_session):
    learner = voice_session.learner
    first_ticket = issue_ticket(actor=learner, session_id=voice_session.pk).value
    second_ticket = issue_ticket(actor=learner, session_id=voice_session.pk).value
    path = f"/ws/sessions/{voice_session.pk}/voice/"

    async def two_nodes():
        a_url = f"ws://127.0.0.1:{two_servers[0]}{path}?ticket={first_ticket}"
        b_url = f"ws://127.0.0.1:{two_servers[1]}{path}?ticket={second_ticket}"
        async with websockets.connect(a_url, open_timeout=30) as on_a:
            ready = json.loads(await asyncio.wait_for(on_a.recv(), 30))
            async with websockets.connect(b_url, open_timeout=30) as on_b:
                json.loads(await asyncio.wait_for(on_b.recv(), 30))
                opened_b = time.monotonic()
                code = await _until_closed(on_a)
                took = time.monotonic() - opened_b
        return ready, code, took

    ready, code, took = run(two_nodes())
    assert ready["type"] == "session.ready"
    assert code == 4409
    assert took < 5, f"closed after {took:.1f} s: the group event crossed servers"
