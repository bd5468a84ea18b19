"""The talking avatar: LiveAvatar's LITE client against a local server that speaks its
protocol, the offline face, and the factory that chooses between them.

The real clients (httpx, websockets) are pointed at the stub by base URL; nothing in them
is patched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time

import pytest
from structlog.testing import capture_logs

from accounts.models import ProviderCredential, ProviderService
from accounts.tests.factories import OrganizationFactory
from voice.avatar import get_avatar_provider
from voice.avatar import liveavatar as liveavatar_module
from voice.avatar.base import (
    AvatarAuthError,
    AvatarConfigurationError,
    AvatarConnectionLost,
    AvatarError,
    AvatarQuotaError,
    AvatarTimeoutError,
    AvatarUnavailableError,
)
from voice.avatar.liveavatar import LiveAvatar, LiveAvatarApi
from voice.avatar.local import LocalAvatar
from voice.errors import SpeechProviderError
from voice.tests.avatar_server import (
    AVATAR_ID,
    CONCURRENCY,
    INVALID_KEY,
    LIVEAVATAR_KEY,
    NO_CREDITS,
    RATE_LIMITED,
    SERVER_ERROR,
    LiveAvatarStub,
)
from voice.tests.speech_servers import HttpResponse, run_bounded, running

SECOND = 48_000  # bytes of 24 kHz 16-bit mono PCM


run = run_bounded


@pytest.fixture(autouse=True)
def _avatar_settings(settings):
    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True  # the stub is http://127.0.0.1
    settings.LIVEAVATAR_TIMEOUT_SECONDS = 2.0
    settings.LIVEAVATAR_CONNECT_TIMEOUT_SECONDS = 2.0
    settings.LIVEAVATAR_AVATAR_ID = AVATAR_ID
    return settings


def tone(seconds: float, frequency: float = 220.0) -> bytes:
    """`seconds` of a tone as 24 kHz 16-bit mono PCM."""
    count = round(seconds * 24_000)
    return b"".join(
        round(8000 * math.sin(2 * math.pi * frequency * i / 24_000)).to_bytes(
            2, "little", signed=True
        )
        for i in range(count)
    )


def provider(server: LiveAvatarStub, api_key: str = LIVEAVATAR_KEY) -> LiveAvatar:
    return LiveAvatar(api_key=api_key, base_url=server.base_url, avatar_id=AVATAR_ID)


async def until(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Listener:
    def __init__(self) -> None:
        self.events = []

    async def __call__(self, event) -> None:
        self.events.append(event)

    def kinds(self, utterance_id=None) -> list[str]:
        return [e.kind for e in self.events if utterance_id in (None, e.utterance_id)]


# --- A whole session --------------------------------------------------------------------


def test_a_whole_lifecycle_from_token_to_stop():
    async def scenario():
        async with running(LiveAvatarStub()) as server:
            listener = Listener()
            avatar = await provider(server).open(41, listener)
            info = avatar.browser_info()
            first = tone(1.5)
            await avatar.speak(first)
            first_id = await avatar.speak_end()
            await until(lambda: "speak_ended" in listener.kinds(first_id))
            second = tone(0.6, 330)
            await avatar.speak(second)
            await until(lambda: len(server.packets) == 3)
            await avatar.interrupt()
            await avatar.keep_alive()
            await until(lambda: "session.keep_alive" in server.types())
            await avatar.close()
            await avatar.close()  # idempotent
            return server, info, listener, first_id, first, second

    server, info, listener, first_id, first, second = run(scenario())
    assert server.problems == []
    session = server.session()
    # Token with the key and LITE mode, start with the session token, stop with it too.
    token_request, start_request = server.http_requests[:2]
    assert token_request.headers["x-api-key"] == LIVEAVATAR_KEY
    assert token_request.json()["mode"] == "LITE"
    assert token_request.json()["avatar_id"] == AVATAR_ID
    assert start_request.headers["authorization"] == f"Bearer {session.session_token}"
    assert "x-api-key" not in start_request.headers
    assert session.stopped_with == "session_token"
    # The browser gets the room and its client token, nothing else of the session.
    assert info == {
        "provider": "liveavatar",
        "livekit_url": "wss://livekit.stub.invalid",
        "livekit_client_token": f"lk-client-{session.session_id}",
        "max_session_seconds": 1200,
    }
    # Commands in order; the first utterance's audio arrived whole, in packets of at most
    # a second.
    assert server.types() == [
        "agent.speak",
        "agent.speak",
        "agent.speak_end",
        "agent.speak",
        "agent.interrupt",
        "session.keep_alive",
    ]
    assert bytes(session.spoken[first_id]) == first
    assert [len(p) for p in server.packets] == [SECOND, SECOND // 2, len(second)]
    assert server.packets[2] == second
    speak_ids = {c["event_id"] for c in server.commands if c["type"] == "agent.speak"}
    assert len(speak_ids) == 2  # one event id per utterance
    # What the face did, as the pipeline learns it.
    second_id = next(i for i in speak_ids if i != first_id)
    assert listener.kinds(first_id) == ["speak_started", "speak_ended"]
    assert listener.kinds(second_id) == ["speak_started", "interrupted"]
    ended = next(e for e in listener.events if e.kind == "speak_ended")
    assert ended.audio_seconds == pytest.approx(1.5)
    interrupted = listener.events[-1]
    assert interrupted.audio_seconds == pytest.approx(0.6)  # all of it had been sent


def test_a_three_second_clause_goes_at_once_in_packets_of_a_second():
    async def scenario():
        async with running(LiveAvatarStub()) as server:
            avatar = await provider(server).open(1)
            clause = tone(3.0)
            await avatar.speak(clause)
            await until(lambda: len(server.packets) == 3)  # without waiting for the end
            utterance = await avatar.speak_end()
            await until(lambda: "agent.speak_end" in server.types())
            await avatar.close()
            return server, clause, utterance

    server, clause, utterance = run(scenario())
    assert server.problems == []
    assert [len(p) for p in server.packets] == [SECOND, SECOND, SECOND]
    assert b"".join(server.packets) == clause
    assert all(size < 1_000_000 for size in server.packet_message_bytes)
    speak = next(c for c in server.commands if c["type"] == "agent.speak")
    assert base64.b64decode(speak["audio"]) == clause[:SECOND]
    assert {c["event_id"] for c in server.commands} == {utterance}


def test_a_short_first_piece_is_sent_at_once_and_pieces_that_wait_are_gathered():
    async def scenario():
        async with running(LiveAvatarStub()) as server:
            avatar = await provider(server).open(1)
            started = time.monotonic()
            await avatar.speak(tone(0.2))
            await until(lambda: len(server.packets) == 1)
            waited = time.monotonic() - started
            # Pieces that come while nothing can be sent (the loop is busy here) wait in
            # one packet, up to a second each, instead of going one by one.
            audio = tone(2.5, 330)
            for start in range(0, len(audio), 960):  # 20 ms pieces, as TTS streams them
                await avatar.speak(audio[start : start + 960])
            await avatar.speak_end()
            await until(lambda: "agent.speak_end" in server.types())
            await avatar.close()
            return server, waited, audio

    server, waited, audio = run(scenario())
    assert server.problems == []
    assert waited < 0.1  # not held back to fill a packet
    assert [len(p) for p in server.packets] == [round(0.2 * SECOND), SECOND, SECOND, SECOND // 2]
    assert b"".join(server.packets[1:]) == audio


def test_an_interruption_drops_the_audio_not_yet_sent():
    async def scenario():
        async with running(LiveAvatarStub()) as server:
            avatar = await provider(server).open(1)
            await avatar.speak(tone(3.0))
            await avatar.interrupt()  # before the send loop could take any of it
            await avatar.keep_alive()
            await until(lambda: "session.keep_alive" in server.types())
            await avatar.close()
            return server

    server = run(scenario())
    assert server.packets == []
    assert server.types() == ["agent.interrupt", "session.keep_alive"]


def test_an_idle_session_is_kept_alive_on_its_own(monkeypatch):
    monkeypatch.setattr(liveavatar_module, "KEEPALIVE_SECONDS", 0.05)

    async def scenario():
        async with running(LiveAvatarStub()) as server:
            avatar = await provider(server).open(1)
            await until(lambda: server.types().count("session.keep_alive") >= 2)
            await avatar.close()
            return server

    server = run(scenario())
    assert server.problems == []
    assert all(c["event_id"] for c in server.commands)


# --- Failures: readable, mapped, never blocking -----------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "kind", "retryable", "words"),
    [
        (401, INVALID_KEY, AvatarAuthError, False, "rejected its API key"),
        (403, {"code": 403, "message": "Forbidden"}, AvatarAuthError, False, "API key"),
        (402, NO_CREDITS, AvatarQuotaError, False, "no credits left"),
        (429, CONCURRENCY, AvatarQuotaError, True, "as many sessions as the plan allows"),
        (429, RATE_LIMITED, AvatarUnavailableError, True, "busy"),
        (500, SERVER_ERROR, AvatarUnavailableError, True, "had a problem"),
        (503, {"message": "upstream down"}, AvatarUnavailableError, True, "had a problem"),
    ],
)
def test_provider_refusals_become_readable_avatar_errors(status, payload, kind, retryable, words):
    async def scenario():
        stub = LiveAvatarStub(token_response=HttpResponse.json(status, payload))
        async with running(stub) as server:
            with pytest.raises(AvatarError) as raised:
                await provider(server).open(1)
            return server, raised.value

    server, error = run(scenario())
    assert type(error) is kind
    assert words in str(error)
    assert error.retryable is retryable
    assert error.session_lost is True
    assert not isinstance(error, SpeechProviderError)  # never ends or refuses the call
    assert [r.path for r in server.http_requests] == ["/v1/sessions/token"]
    assert server.ws_connections == 0


def test_a_wrong_key_is_a_final_auth_error():
    async def scenario():
        async with running(LiveAvatarStub()) as server:
            with pytest.raises(AvatarAuthError) as raised:
                await provider(server, api_key="la-wrong-key-xyz").open(1)
            return raised.value

    error = run(scenario())
    assert error.code == "avatar_bad_key"
    assert error.retryable is False
    assert "la-wrong-key-xyz" not in str(error)


def test_a_start_that_fails_stops_the_session_its_token_created():
    async def scenario():
        stub = LiveAvatarStub(start_response=HttpResponse.json(500, SERVER_ERROR))
        async with running(stub) as server:
            with pytest.raises(AvatarUnavailableError):
                await provider(server).open(1)
            return server

    server = run(scenario())
    assert server.session().stopped_with == "session_token"
    assert server.ws_connections == 0


def test_a_service_that_never_answers_times_out_within_the_setting(settings):
    settings.LIVEAVATAR_TIMEOUT_SECONDS = 0.5

    async def scenario():
        async with running(LiveAvatarStub(token_response=HttpResponse(hang=True))) as server:
            started = time.monotonic()
            with pytest.raises(AvatarTimeoutError) as raised:
                await provider(server).open(1)
            return raised.value, time.monotonic() - started

    error, elapsed = run(scenario())
    assert "did not answer in time" in str(error)
    assert error.retryable is True
    assert 0.4 < elapsed < 2.0


def test_an_avatar_that_never_connects_times_out_and_is_stopped(settings):
    settings.LIVEAVATAR_CONNECT_TIMEOUT_SECONDS = 0.5

    async def scenario():
        async with running(LiveAvatarStub(never_connect=True)) as server:
            listener = Listener()
            started = time.monotonic()
            with pytest.raises(AvatarTimeoutError) as raised:
                await provider(server).open(1, listener)
            return server, raised.value, time.monotonic() - started, listener

    server, error, elapsed, listener = run(scenario())
    assert "did not join its room in time" in str(error)
    assert 0.4 < elapsed < 2.0
    assert server.session().stopped_with == "session_token"  # not left running (billed)
    assert server.commands == []
    assert listener.events == []


def test_a_socket_dropped_mid_speech_loses_the_avatar_but_raises_only_avatar_errors():
    async def scenario():
        async with running(LiveAvatarStub(drop_after_packets=1)) as server:
            listener = Listener()
            avatar = await provider(server).open(1, listener)
            await avatar.speak(tone(3.0))  # returns at once: the network is not awaited
            await until(lambda: "lost" in listener.kinds())
            await until(lambda: server.session().stopped_with is not None)
            started = time.monotonic()
            with pytest.raises(AvatarConnectionLost) as raised:
                await avatar.speak(tone(0.5))
            with pytest.raises(AvatarConnectionLost):
                await avatar.interrupt()
            fast = time.monotonic() - started
            await avatar.close()
            return server, listener, raised.value, fast

    server, listener, error, fast = run(scenario())
    assert server.problems == []
    assert "connection to the avatar was lost" in str(error)
    assert error.session_lost is True
    assert fast < 0.1  # a lost avatar answers at once: it never holds the reply up
    lost = next(e for e in listener.events if e.kind == "lost")
    assert isinstance(lost.error, AvatarConnectionLost)
    # Stopped at the provider as soon as it was lost, not only when the call ends.
    assert server.session().stopped_with == "session_token"


def test_a_session_ended_by_the_provider_is_reported_lost():
    async def scenario():
        async with running(LiveAvatarStub(end_after_connect=True)) as server:
            listener = Listener()
            avatar = await provider(server).open(1, listener)
            await until(lambda: "lost" in listener.kinds())
            with pytest.raises(AvatarConnectionLost):
                await avatar.speak(tone(0.1))
            await avatar.close()
            return listener

    listener = run(scenario())
    assert "ended by LiveAvatar" in str(listener.events[-1].error)


def test_an_open_breaker_fails_fast_without_calling_the_service(settings):
    async def scenario():
        stub = LiveAvatarStub(token_response=HttpResponse.json(500, SERVER_ERROR))
        async with running(stub) as server:
            avatar = provider(server)
            for _ in range(avatar.breaker.threshold):
                with pytest.raises(AvatarUnavailableError):
                    await avatar.open(1)
            calls = len(server.http_requests)
            with pytest.raises(AvatarUnavailableError) as raised:
                await avatar.open(1)
            return server, calls, raised.value

    server, calls, error = run(scenario())
    assert len(server.http_requests) == calls
    assert "paused" in str(error)


# --- Secrets ----------------------------------------------------------------------------


def test_the_key_and_tokens_never_reach_logs_pages_or_messages(caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        errors = []
        async with running(LiveAvatarStub()) as server:
            avatar = await provider(server).open(1)
            info = avatar.browser_info()
            await avatar.speak(tone(1.2))
            await avatar.speak_end()
            await avatar.interrupt()
            await avatar.close()
            shown = repr(avatar.started) + repr(provider(server))
        for status, payload in [(401, INVALID_KEY), (402, NO_CREDITS), (500, SERVER_ERROR)]:
            stub = LiveAvatarStub(token_response=HttpResponse.json(status, payload))
            async with running(stub) as failing:
                with pytest.raises(AvatarError) as raised:
                    await provider(failing).open(1)
                errors.append(str(raised.value))
        return server, info, errors, shown

    with capture_logs() as structured:
        server, info, errors, shown = run(scenario())
    session = server.session()
    secrets = [LIVEAVATAR_KEY, session.session_token, session.ws_token]
    secrets.append(f"lk-agent-{session.session_id}")
    # The stub's own server logs are the provider's side, not ours.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server")]
    everything = "\n".join(
        [
            *ours,
            json.dumps(structured, default=str),
            json.dumps(info),
            *errors,
            shown,
        ]
    )
    assert structured  # the session was logged, just not its secrets
    for secret in secrets:
        assert secret not in everything


# --- Housekeeping endpoints -------------------------------------------------------------


def test_sessions_can_be_listed_kept_alive_and_stopped_with_the_key():
    async def scenario():
        async with running(LiveAvatarStub()) as server:
            avatar = await provider(server).open(1)
            async with LiveAvatarApi(
                api_key=LIVEAVATAR_KEY, base_url=server.base_url, timeout=2.0
            ) as api:
                active = await api.list_sessions("active")
                await api.keep_alive(avatar.session_id)
                await api.stop_session(avatar.session_id)  # a sweeper's way: with the key
                after = await api.list_sessions("active")
                historic = await api.list_sessions("historic")
            await avatar.close()
            return server, avatar, active, after, historic

    server, avatar, active, after, historic = run(scenario())
    assert [s.session_id for s in active] == [avatar.session_id]
    assert active[0].status == "connected"
    assert server.http_keepalives == [avatar.session_id]
    assert after == []
    assert [s.session_id for s in historic] == [avatar.session_id]


# --- The offline face -------------------------------------------------------------------


def test_the_local_avatar_draws_in_the_page_and_reports_what_it_was_given():
    async def scenario():
        listener = Listener()
        avatar = await LocalAvatar().open(7, listener)
        info = avatar.browser_info()
        await avatar.speak(tone(0.5))
        await avatar.speak(tone(0.5))
        first = await avatar.speak_end()
        nothing = await avatar.speak_end()
        await avatar.speak(tone(0.25))
        await avatar.interrupt()
        await avatar.keep_alive()
        await avatar.close()
        await avatar.speak(tone(0.25))  # after close: nothing, no error
        return info, listener, first, nothing

    info, listener, first, nothing = run(scenario())
    assert info == {"provider": "local"}
    assert nothing is None
    assert [(e.kind, e.utterance_id == first) for e in listener.events] == [
        ("speak_started", True),
        ("speak_ended", True),
        ("speak_started", False),
        ("interrupted", False),
    ]
    assert listener.events[1].audio_seconds == pytest.approx(1.0)


# --- The factory ------------------------------------------------------------------------


def test_the_factory_chooses_from_settings(settings):
    settings.AVATAR_PROVIDER = "local"
    assert isinstance(get_avatar_provider(None), LocalAvatar)

    settings.AVATAR_PROVIDER = "liveavatar"
    settings.LIVEAVATAR_API_KEY = ""
    with pytest.raises(AvatarConfigurationError, match="no API key"):
        get_avatar_provider(None)

    settings.LIVEAVATAR_API_KEY = LIVEAVATAR_KEY
    settings.LIVEAVATAR_BASE_URL = "https://203.0.113.9"
    chosen = get_avatar_provider(None)
    assert isinstance(chosen, LiveAvatar)
    assert chosen.avatar_id == AVATAR_ID
    assert LIVEAVATAR_KEY not in repr(chosen)

    settings.LIVEAVATAR_AVATAR_ID = ""
    with pytest.raises(AvatarConfigurationError, match="LIVEAVATAR_AVATAR_ID"):
        get_avatar_provider(None)

    settings.LIVEAVATAR_AVATAR_ID = AVATAR_ID
    settings.AVATAR_PROVIDER = "hologram"
    with pytest.raises(AvatarConfigurationError, match="Unknown avatar provider"):
        get_avatar_provider(None)


def test_the_factory_applies_the_provider_endpoint_check(settings):
    settings.AVATAR_PROVIDER = "liveavatar"
    settings.LIVEAVATAR_API_KEY = LIVEAVATAR_KEY
    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = False
    for url in ("http://203.0.113.9", "https://127.0.0.1", "https://169.254.169.254"):
        settings.LIVEAVATAR_BASE_URL = url
        with pytest.raises(AvatarConfigurationError, match="endpoint cannot be used"):
            get_avatar_provider(None)


@pytest.mark.django_db
def test_an_organizations_own_avatar_key_comes_first(settings):
    settings.AVATAR_PROVIDER = "local"
    settings.LIVEAVATAR_API_KEY = ""
    acme, globex = OrganizationFactory(), OrganizationFactory()
    ProviderCredential.objects.create(
        organization=acme,
        service=ProviderService.AVATAR,
        base_url="https://203.0.113.9",
        api_key="la-acme-own",
    )
    own = get_avatar_provider(acme.pk)
    assert isinstance(own, LiveAvatar)
    assert own.base_url == "https://203.0.113.9"
    assert "la-acme-own" not in repr(own)
    assert isinstance(get_avatar_provider(globex.pk), LocalAvatar)  # the platform's choice
