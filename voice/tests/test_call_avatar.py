"""A voice call with a hosted face: LiveAvatar (a local server speaking its protocol) is
opened when the learner's page can show it, is fed the reply's audio, is interrupted at a
barge-in and stopped when the call ends; the organization's avatar sessions and minutes
are capped; and whatever the avatar does, the call goes on with voice."""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from training import turns
from training.tests.run_turns import run
from voice.avatar import usage
from voice.models import AvatarSession, VoiceCall
from voice.tests.avatar_server import (
    AVATAR_ID,
    LIVEAVATAR_KEY,
    NO_CREDITS,
    PUBLIC_AVATAR_ID,
    LiveAvatarStub,
)
from voice.tests.speech import call_for, silence, spoken
from voice.tests.speech_servers import HttpResponse, running

SENTENCE = "Hello Dana, I wanted to ask about the price of your support plan."


@pytest.fixture
def hosted_avatar(settings):
    settings.AVATAR_PROVIDER = "liveavatar"
    settings.LIVEAVATAR_API_KEY = LIVEAVATAR_KEY
    settings.LIVEAVATAR_AVATAR_ID = AVATAR_ID
    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True  # the stub is http://127.0.0.1
    settings.LIVEAVATAR_TIMEOUT_SECONDS = 3.0
    settings.LIVEAVATAR_CONNECT_TIMEOUT_SECONDS = 3.0
    return settings


async def _turn(voice_session, stub, *, faces=("livekit",), interrupt=False):
    """One spoken turn of a call whose page can show `faces`; returns the client."""
    client = call_for(voice_session.learner_for_test, voice_session.pk)
    assert await client.connect()
    await client.wait_for("session.ready")
    await client.send_json({"type": "start", "avatar": list(faces)})
    await client.speak(silence(300) + spoken(SENTENCE) + silence(1500))
    if interrupt:
        await client.wait_for("reply.audio_started", timeout=60)
        await client.send_json({"type": "interrupt"})
    await client.wait_for("reply.done", timeout=60)
    await client.disconnect()
    return client


async def _with_face(voice_session):
    """A call whose page can show the hosted face, once the face is ready."""
    client = call_for(voice_session.learner_for_test, voice_session.pk)
    assert await client.connect()
    await client.wait_for("session.ready")
    await client.send_json({"type": "start", "avatar": ["livekit"]})
    await client.wait_for("avatar.ready", timeout=10)
    return client


@pytest.fixture
def voice_session(voice_session):
    voice_session.learner_for_test = voice_session.learner  # loaded outside the event loop
    return voice_session


def test_the_face_is_opened_fed_the_reply_and_stopped_with_the_call(voice_session, hosted_avatar):
    async def call():
        async with running(LiveAvatarStub()) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            client = await _turn(voice_session, stub)
            return client, stub

    client, stub = run(call())
    ready = client.of_type("avatar.ready")[0]
    assert ready["provider"] == "liveavatar"
    assert ready["livekit_url"]
    assert ready["livekit_client_token"]
    assert LIVEAVATAR_KEY not in json.dumps(client.events), "the key never reaches the page"
    session = stub.session()
    assert stub.token_bodies[0]["mode"] == "LITE"
    # The reply's audio went to the face as well as to the page, and its end was marked.
    spoken_bytes = sum(len(audio) for audio in session.spoken.values())
    assert spoken_bytes == len(client.audio) > 24_000
    assert "agent.speak_end" in stub.types()
    assert session.stopped_with is not None, "stopped at the provider when the call ended"
    avatar = AvatarSession.objects.get(session=voice_session)
    assert avatar.provider_session_id == session.session_id
    assert avatar.ended_at is not None
    assert avatar.seconds > 1
    assert avatar.call == VoiceCall.objects.get(session=voice_session)
    assert not stub.problems


def test_a_face_lost_mid_reply_is_ended_and_the_call_goes_on(voice_session, hosted_avatar):
    async def call():
        async with running(LiveAvatarStub(drop_after_packets=1)) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            return await _turn(voice_session, stub)

    client = run(call())
    unavailable = client.of_type("avatar.unavailable")[0]
    assert unavailable["message"].startswith("The video avatar stopped")
    assert len(client.audio) > 24_000, "the reply was still spoken, by voice"
    avatar = AvatarSession.objects.get(session=voice_session)
    assert avatar.ended_at is not None, "no longer counted against the organization's cap"
    assert avatar.ended_reason


def test_a_page_that_cannot_join_the_room_has_the_face_closed_and_the_call_goes_on(
    voice_session, hosted_avatar
):
    """The page says its room failed (`avatar_stop`): nobody sees the face, so it is
    stopped at the provider and no longer counted, and the turn is still spoken."""

    async def call():
        async with running(LiveAvatarStub()) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            client = await _with_face(voice_session)
            await client.send_json({"type": "avatar_stop", "reason": "the room refused us"})
            await client.speak(silence(300) + spoken(SENTENCE) + silence(1500))
            await client.wait_for("reply.done", timeout=60)
            await client.disconnect()
            return client, stub

    client, stub = run(call())
    session = stub.session()
    assert session.stopped_with == "session_token"
    assert not session.spoken, "no reply audio went to a face nobody sees"
    assert len(client.audio) > 24_000, "the reply was spoken, by voice"
    assert not client.of_type("error"), client.of_type("error")
    avatar = AvatarSession.objects.get(session=voice_session)
    assert avatar.ended_at is not None
    assert avatar.ended_reason == "the page: the room refused us"
    assert not stub.problems


@pytest.mark.parametrize("via", ["avatar", None])
def test_an_interrupted_reply_keeps_only_what_the_face_had_said(voice_session, hosted_avatar, via):
    """The learner hears the face, which renders behind the audio it is sent (here it
    starts 3 s late): a reply stopped before the face began is kept as nothing heard,
    whatever the page's silenced player had reached. A page that plays our own audio
    (`via` absent) keeps what its player reports. (The delay is long because this client
    reads `reply.audio_started` only once it has sent its trailing silence, which can be a
    second after the reply's first audio reached the face.)"""

    async def call():
        async with running(LiveAvatarStub(speak_started_delay=3.0)) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            client = await _with_face(voice_session)
            await client.speak(silence(300) + spoken(SENTENCE) + silence(1500))
            started = await client.wait_for("reply.audio_started", timeout=60)
            await asyncio.sleep(0.6)
            report = {"type": "playback", "reply_id": started["reply_id"], "played_ms": 600}
            await client.send_json(report | ({"via": via} if via else {}))
            await client.send_json({"type": "interrupt"})
            await client.wait_for("reply.done", timeout=60)
            await client.disconnect()
            return client, stub

    client, stub = run(call())
    interrupted = client.of_type("reply.interrupted")[0]
    done = client.of_type("reply.done")[0]
    assert done["interrupted"] is True
    if via == "avatar":
        assert not stub.speak_started_at, "the face had not begun when it was stopped"
        assert interrupted["played_ms"] == 0
        assert done["text"] == ""
    else:
        assert interrupted["played_ms"] >= 600
        assert done["text"], "the words the page played are kept"
    assert not stub.problems


def test_a_barge_in_tells_the_face_to_stop(voice_session, hosted_avatar):
    async def call():
        async with running(LiveAvatarStub()) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            await _turn(voice_session, stub, interrupt=True)
            return stub

    stub = run(call())
    types = stub.types()
    assert "agent.interrupt" in types
    after = types[types.index("agent.interrupt") + 1 :]
    assert "agent.speak" not in after, "nothing more of that reply was sent to the face"


def test_when_the_provider_refuses_the_call_goes_on_with_voice(voice_session, hosted_avatar):
    async def call():
        stub = LiveAvatarStub(token_response=HttpResponse.json(402, NO_CREDITS))
        async with running(stub):
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            return await _turn(voice_session, stub)

    client = run(call())
    unavailable = client.of_type("avatar.unavailable")[0]
    assert "credit" in unavailable["message"].lower()
    assert unavailable["message"].endswith("The call goes on with voice.")
    assert not client.of_type("avatar.ready")
    assert len(client.audio) > 24_000, "the reply was still spoken"
    avatar = AvatarSession.objects.get(session=voice_session)
    assert avatar.ended_at is not None
    assert "credit" in avatar.ended_reason.lower()


def test_the_organizations_avatar_sessions_at_once_are_capped(voice_session, hosted_avatar):
    organization = voice_session.organization
    organization.avatar_sessions_limit = 1
    organization.save()
    other_call = VoiceCall.objects.create(
        organization=organization, session=voice_session, learner=voice_session.learner
    )
    AvatarSession.objects.create(
        organization=organization, session=voice_session, call=other_call, provider="liveavatar"
    )

    async def call():
        async with running(LiveAvatarStub()) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            return await _turn(voice_session, stub), stub

    client, stub = run(call())
    assert (
        "1 video avatar session(s) are all in use"
        in client.of_type("avatar.unavailable")[0]["message"]
    )
    assert not stub.token_bodies, "the provider was never asked"
    assert len(client.audio) > 24_000


def test_the_months_avatar_minutes_are_a_budget(voice_session, hosted_avatar):
    organization = voice_session.organization
    organization.avatar_minutes_per_month = 1
    organization.save()
    AvatarSession.objects.create(
        organization=organization,
        session=voice_session,
        provider="liveavatar",
        seconds=61,
        ended_at=timezone.now(),
    )

    async def call():
        async with running(LiveAvatarStub()) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            return await _turn(voice_session, stub), stub

    client, stub = run(call())
    assert "this month's video avatar minutes" in client.of_type("avatar.unavailable")[0]["message"]
    assert not stub.token_bodies


def test_a_page_that_cannot_show_a_hosted_face_never_opens_one(voice_session, hosted_avatar):
    async def call():
        async with running(LiveAvatarStub()) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            return await _turn(voice_session, stub, faces=()), stub

    client, stub = run(call())
    assert not client.of_type("avatar.ready")
    assert not client.of_type("avatar.unavailable")
    assert not stub.token_bodies, "nothing is billed for a face nobody sees"
    assert not AvatarSession.objects.exists()


def test_the_sweeper_stops_sessions_a_lost_process_left_open(voice_session, hosted_avatar):
    async def opened_elsewhere(stub):
        # Two sessions opened at the provider: one ours (its process then died), one
        # nobody here knows.
        from voice.avatar.liveavatar import LiveAvatarApi

        async with LiveAvatarApi(api_key=LIVEAVATAR_KEY, base_url=stub.base_url, timeout=3) as api:
            ours = await api.create_session_token(
                avatar_id=AVATAR_ID, video_quality="high", is_sandbox=False
            )
            await api.start_session(ours.session_token)
            unknown = await api.create_session_token(
                avatar_id=AVATAR_ID, video_quality="high", is_sandbox=False
            )
            await api.start_session(unknown.session_token)
        return ours.session_id, unknown.session_id

    stub_holder = {}
    organization = voice_session.organization

    def stale_row(provider_session_id: str) -> int:
        stale = AvatarSession.objects.create(
            organization=organization,
            session=voice_session,
            provider="liveavatar",
            provider_session_id=provider_session_id,
        )
        AvatarSession.objects.filter(pk=stale.pk).update(
            last_seen_at=timezone.now() - timedelta(minutes=5)
        )
        return stale.pk

    async def sweep_while_running():
        async with running(LiveAvatarStub()) as stub:
            hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
            ours, unknown = await opened_elsewhere(stub)
            # On the calls' database thread, whose connection the suite closes after.
            on_database = functools.partial(turns.on_database_thread, turns.database_thread())
            stale_id = await on_database(stale_row)(ours)
            swept = await on_database(usage.sweep)()
            stub_holder.update(stub=stub, ours=ours, unknown=unknown, swept=swept)
            return stale_id

    stale_id = run(sweep_while_running())
    stub = stub_holder["stub"]
    assert stub_holder["swept"] == 2
    assert stub.sessions[stub_holder["ours"]].stopped_with == "api_key"
    assert stub.sessions[stub_holder["unknown"]].stopped_with == "api_key"
    stale = AvatarSession.objects.get(pk=stale_id)
    assert stale.ended_at is not None
    assert stale.ended_reason == "ended by the sweeper"


@pytest.mark.django_db
def test_managers_read_each_hosted_avatar_sessions_minutes_in_the_admin(
    client, alice, bob, acme, mallory, globex
):
    from training import sessions
    from training.tests.factories import make_scenario

    ours = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk, channel="voice")
    AvatarSession.objects.create(organization=acme, session=ours, provider="liveavatar", seconds=90)
    theirs_learner = mallory  # a Globex session, whose minutes Acme must not see
    theirs = sessions.start_session(
        actor=theirs_learner, scenario_id=make_scenario(globex).pk, channel="voice"
    )
    AvatarSession.objects.create(
        organization=globex, session=theirs, provider="liveavatar", seconds=1234
    )
    client.force_login(alice)

    page = client.get("/admin/voice/avatarsession/")

    assert page.status_code == 200
    text = page.content.decode()
    assert bob.email in text
    assert ">1.5<" in text, "90 seconds shown as 1.5 minutes"
    assert "20.6" not in text, "another organization's session is not listed"
    client.force_login(bob)
    assert client.get("/admin/voice/avatarsession/").status_code in (302, 403)


async def _opened_and_closed(voice_session, hosted_avatar):
    """A call that opens with the face ready and ends; the client and the stub."""
    async with running(LiveAvatarStub()) as stub:
        hosted_avatar.LIVEAVATAR_BASE_URL = stub.base_url
        client = await _with_face(voice_session)
        await client.disconnect()
        return client, stub


@pytest.mark.parametrize(
    ("choice", "provider", "expected"),
    [
        ("drawn:warm", "liveavatar", "local"),  # a drawn look: never a hosted face
        ("hosted", "local", "liveavatar"),  # the scenario asks for the video avatar
        ("", "local", "local"),  # the installation's default
    ],
)
def test_the_scenarios_choice_of_face_decides_whether_one_is_opened(
    voice_session, hosted_avatar, choice, provider, expected
):
    voice_session.scenario.avatar = choice
    voice_session.scenario.save(update_fields=["avatar"])
    hosted_avatar.AVATAR_PROVIDER = provider

    client, stub = run(_opened_and_closed(voice_session, hosted_avatar))
    assert client.of_type("avatar.ready")[0]["provider"] == expected
    assert bool(stub.sessions) == (expected == "liveavatar")
    assert not stub.problems


def test_the_face_is_the_avatar_the_scenario_chose(voice_session, hosted_avatar):
    voice_session.scenario.avatar = "hosted"
    voice_session.scenario.avatar_id = PUBLIC_AVATAR_ID
    voice_session.scenario.save(update_fields=["avatar", "avatar_id"])

    client, stub = run(_opened_and_closed(voice_session, hosted_avatar))
    assert client.of_type("avatar.ready")[0]["provider"] == "liveavatar"
    assert [body["avatar_id"] for body in stub.token_bodies] == [PUBLIC_AVATAR_ID]
    assert not stub.problems
