"""A speech or avatar provider out of credit during a call: the call goes on as it can and
the organization's admins are told (a notice on their home page, one email a day), as for
the language model (training/tests/test_billing_notices.py)."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import NoticeKind, OrganizationNotice, Role
from accounts.tests.factories import UserFactory
from training.tests.run_turns import run
from voice.tests.avatar_server import AVATAR_ID, LIVEAVATAR_KEY, NO_CREDITS, LiveAvatarStub
from voice.tests.speech import call_for, silence, spoken
from voice.tests.speech_servers import ELEVENLABS_KEY, ElevenLabsStub, HttpResponse, running

SENTENCE = "Hello Dana, I wanted to ask about the price of your support plan."
TTS_MODEL = "eleven_flash_v2_5"
VOICE = "21m00Tcm4TlvDq8ikWAM"


@pytest.fixture
def voice_session(voice_session):
    voice_session.learner_for_test = voice_session.learner  # loaded outside the event loop
    voice_session.admin_for_test = UserFactory(
        organization=voice_session.organization, role=Role.ADMIN, email="ada@org.test"
    )
    return voice_session


async def _call(voice_session, *, faces=()):
    client = call_for(voice_session.learner_for_test, voice_session.pk)
    assert await client.connect()
    ready = await client.wait_for("session.ready")
    await client.send_json({"type": "start", "avatar": list(faces)})
    await client.speak(silence(300) + spoken(SENTENCE) + silence(1500))
    await client.wait_for("reply.done", timeout=60)
    await client.disconnect()
    return client, ready


def test_speech_synthesis_out_of_credit_tells_the_admins_once(voice_session, settings):
    voice_session.scenario.voice = VOICE
    voice_session.scenario.save(update_fields=["voice"])

    async def calls():
        async with running(
            ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE, quota_on_text=True)
        ) as stub:
            settings.VOICE_TTS_PROVIDER = "elevenlabs"
            settings.VOICE_TTS_API_KEY = ELEVENLABS_KEY
            settings.VOICE_TTS_BASE_URL = stub.origin
            settings.VOICE_TTS_MODEL = TTS_MODEL
            settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True
            first, _ = await _call(voice_session)
            second, _ = await _call(voice_session)
            return first, second

    first, second = run(calls())
    assert any(e["code"] == "text_to_speech_failed" for e in second.of_type("error"))
    errors = [e for e in first.of_type("error") if e["code"] == "text_to_speech_failed"]
    assert errors, first.events
    assert "quota" in errors[0]["message"]
    assert first.of_type("reply.done"), "the turn is still answered (in text)"
    notice = OrganizationNotice.objects.get(organization=voice_session.organization)
    assert notice.kind == NoticeKind.SPEECH_CREDIT
    assert "speech synthesis" in notice.message
    assert notice.occurrences == 2  # the second call's failure refreshed it
    assert [m.to for m in mail.outbox] == [["ada@org.test"]]  # one email, to the admin


def test_a_video_avatar_out_of_credit_tells_the_admins(voice_session, settings):
    async def call():
        async with running(
            LiveAvatarStub(token_response=HttpResponse.json(402, NO_CREDITS))
        ) as stub:
            settings.AVATAR_PROVIDER = "liveavatar"
            settings.LIVEAVATAR_API_KEY = LIVEAVATAR_KEY
            settings.LIVEAVATAR_AVATAR_ID = AVATAR_ID
            settings.LIVEAVATAR_BASE_URL = stub.base_url
            settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True
            client, _ = await _call(voice_session, faces=("livekit",))
            return client

    client = run(call())
    assert client.of_type("avatar.unavailable")[0]["code"] == "avatar_quota"
    notice = OrganizationNotice.objects.get(organization=voice_session.organization)
    assert notice.kind == NoticeKind.AVATAR_CREDIT
    assert "video avatar" in notice.message
    assert [m.to for m in mail.outbox] == [["ada@org.test"]]
