"""Who may open a voice socket, what a bad message gets, and when a live call is closed:
every refusal a documented close code (voice/PROTOCOL.md), the server unharmed."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory, UserFactory
from training import sessions
from training.models import Message
from training.tests.run_turns import run
from voice.models import VoiceCall
from voice.tests.speech import call_for, describe, silence, spoken


@pytest.fixture
def quick_checks(settings):
    settings.VOICE_RECHECK_SECONDS = 0.2


async def _refused_with(client) -> int:
    await client.connect()
    code = await client.wait_closed()
    await client.disconnect()
    return code


def test_a_signed_out_visitor_is_closed_with_4401(voice_session):
    assert run(_refused_with(call_for(None, voice_session.pk))) == 4401


def test_another_learners_or_organizations_session_is_4404_like_a_missing_one(voice_session):
    colleague = UserFactory(organization=voice_session.organization)
    outsider = UserFactory(organization=OrganizationFactory())
    assert run(_refused_with(call_for(colleague, voice_session.pk))) == 4404
    assert run(_refused_with(call_for(outsider, voice_session.pk))) == 4404
    assert run(_refused_with(call_for(voice_session.learner, 999_999))) == 4404


def test_a_text_session_or_an_ended_one_is_4409(voice_session):
    learner = voice_session.learner
    text = sessions.start_session(actor=learner, scenario_id=voice_session.scenario_id)
    assert run(_refused_with(call_for(learner, text.pk))) == 4409
    sessions.end_session(actor=learner, session_id=voice_session.pk)
    assert run(_refused_with(call_for(learner, voice_session.pk))) == 4409


def test_a_cookie_without_an_origin_is_refused_api_clients_use_a_ticket(voice_session):
    learner = voice_session.learner
    assert run(_refused_with(call_for(learner, voice_session.pk, origin=False))) == 4403


def test_a_ticket_opens_one_connection_once(voice_session, api_as):
    learner = voice_session.learner
    response = api_as(learner).post(f"/api/v1/sessions/{voice_session.pk}/voice-ticket/")
    assert response.status_code == 201, response.content
    ticket = response.json()["ticket"]
    assert response.json()["url"].endswith(f"?ticket={ticket}")

    async def use_twice():
        first = call_for(None, voice_session.pk, query=f"ticket={ticket}", origin=False)
        assert await first.connect()
        ready = await first.wait_for("session.ready")
        await first.disconnect()
        second = call_for(None, voice_session.pk, query=f"ticket={ticket}", origin=False)
        return ready, await _refused_with(second)

    ready, reused = run(use_twice())
    assert ready["session_id"] == voice_session.pk
    assert reused == 4401
    assert (
        run(_refused_with(call_for(None, voice_session.pk, query="ticket=forged", origin=False)))
        == 4401
    )


def test_a_ticket_is_for_its_own_session_and_its_learner_only(voice_session, api_as):
    learner = voice_session.learner
    other = sessions.start_session(
        actor=learner, scenario_id=voice_session.scenario_id, channel="voice"
    )
    ticket = (
        api_as(learner).post(f"/api/v1/sessions/{voice_session.pk}/voice-ticket/").json()["ticket"]
    )
    assert (
        run(_refused_with(call_for(None, other.pk, query=f"ticket={ticket}", origin=False))) == 4401
    )
    outsider = UserFactory(organization=OrganizationFactory())
    response = api_as(outsider).post(f"/api/v1/sessions/{voice_session.pk}/voice-ticket/")
    assert response.status_code == 404
    text = sessions.start_session(actor=learner, scenario_id=voice_session.scenario_id)
    response = api_as(learner).post(f"/api/v1/sessions/{text.pk}/voice-ticket/")
    assert response.status_code == 409
    assert "text session" in response.json()["error"]["message"]


def test_bad_messages_get_an_error_change_nothing_and_the_call_goes_on(voice_session):
    learner = voice_session.learner

    async def misbehave():
        client = call_for(learner, voice_session.pk)
        await client.connect()
        await client.wait_for("session.ready")
        await client.send_json({"type": "start"})
        await client.communicator.send_to(bytes_data=b"\x01\x02\x03")  # odd length
        await client.communicator.send_to(bytes_data=b"\0" * 4000)  # 125 ms in one frame
        await client.communicator.send_to(text_data="{not json")
        await client.communicator.send_to(text_data="[" * 20_000)  # too deep to read
        await client.send_json({"type": "dance"})
        await client.communicator.send_to(text_data='"just a string"')
        await client.send_json({"type": "playback", "reply_id": "x", "played_ms": -1})
        await client.send_json({"type": "start", "mode": "telepathy"})
        await client.send_json({"type": "ping", "t": 7})
        pong = await client.wait_for("pong")
        errors = client.of_type("error")
        await client.disconnect()
        return errors, pong

    errors, pong = run(misbehave())
    assert [e["code"] for e in errors] == ["bad_audio", "bad_audio"] + ["bad_message"] * 6
    assert all(not e["fatal"] and e["message"] for e in errors)
    assert "16 kHz" in errors[0]["message"]
    assert pong["t"] == 7
    assert list(Message.objects.filter(session=voice_session).values_list("role", flat=True)) == [
        "persona"
    ]


def test_an_oversized_message_closes_with_4413(voice_session):
    learner = voice_session.learner

    async def flood():
        client = call_for(learner, voice_session.pk)
        await client.connect()
        await client.wait_for("session.ready")
        await client.communicator.send_to(
            text_data=json.dumps({"type": "ping", "pad": "x" * 70_000})
        )
        return await client.wait_closed()

    assert run(flood()) == 4413


def test_audio_far_faster_than_real_time_is_refused(voice_session, settings):
    settings.VOICE_MAX_AUDIO_AHEAD_MS = 500
    learner = voice_session.learner

    async def rush():
        client = call_for(learner, voice_session.pk)
        await client.connect()
        await client.wait_for("session.ready")
        await client.send_json({"type": "start"})
        audio = silence(4000)
        for start in range(0, len(audio), 640):
            await client.communicator.send_to(bytes_data=audio[start : start + 640])
        return client, await client.wait_closed()

    client, code = run(rush())
    assert client.of_type("error")[0]["code"] == "too_fast"
    assert code == 4429


def test_a_second_connection_takes_over_and_the_first_is_told_why(voice_session):
    learner = voice_session.learner

    async def two_tabs():
        first = call_for(learner, voice_session.pk)
        await first.connect()
        await first.wait_for("session.ready")
        second = call_for(learner, voice_session.pk)
        await second.connect()
        await second.wait_for("session.ready")
        code = await first.wait_closed()
        await second.disconnect()
        return first, code

    first, code = run(two_tabs())
    assert code == 4409
    assert "another window" in first.of_type("error")[-1]["message"]
    assert VoiceCall.objects.filter(session=voice_session).count() == 2


def test_ending_the_session_elsewhere_closes_the_call_within_seconds(voice_session, quick_checks):
    learner = voice_session.learner

    async def end_elsewhere():
        client = call_for(learner, voice_session.pk)
        await client.connect()
        await client.wait_for("session.ready")
        from channels.db import database_sync_to_async

        await database_sync_to_async(sessions.end_session)(
            actor=learner, session_id=voice_session.pk
        )
        return await client.wait_closed(timeout=5)

    assert run(end_elsewhere()) == 4409


@pytest.mark.parametrize("change", ["deactivate", "promote"])
def test_deactivation_or_a_role_change_closes_a_live_call(voice_session, quick_checks, change):
    learner = voice_session.learner

    async def change_account():
        client = call_for(learner, voice_session.pk)
        await client.connect()
        await client.wait_for("session.ready")
        from channels.db import database_sync_to_async

        fields = {"is_active": False} if change == "deactivate" else {"role": "manager"}
        await database_sync_to_async(type(learner).objects.filter(pk=learner.pk).update)(**fields)
        return await client.wait_closed(timeout=5)

    assert run(change_account()) == 4403


def test_a_call_held_past_the_time_limit_ends_the_session(voice_session, quick_checks):
    learner = voice_session.learner

    async def overstay():
        client = call_for(learner, voice_session.pk)
        await client.connect()
        await client.wait_for("session.ready")
        from channels.db import database_sync_to_async

        await database_sync_to_async(
            type(voice_session).objects.filter(pk=voice_session.pk).update
        )(expires_at=timezone.now())
        return await client.wait_closed(timeout=5)

    assert run(overstay()) == 4410
    voice_session.refresh_from_db()
    assert voice_session.status == "ended"
    assert voice_session.ended_reason == "time_limit"


def test_a_connection_that_sends_nothing_is_closed_as_idle(voice_session, settings, quick_checks):
    settings.VOICE_IDLE_SECONDS = 1
    assert run(_refused_with(call_for(voice_session.learner, voice_session.pk))) == 4408


def test_one_call_at_a_time_per_learner_and_the_monthly_minutes_budget(voice_session):
    learner = voice_session.learner
    other = sessions.start_session(
        actor=learner, scenario_id=voice_session.scenario_id, channel="voice"
    )

    async def second_call():
        first = call_for(learner, voice_session.pk)
        await first.connect()
        await first.wait_for("session.ready")
        code = await _refused_with(call_for(learner, other.pk))
        await first.disconnect()
        return first, code

    _, code = run(second_call())
    assert code == 4429
    organization = voice_session.organization
    organization.voice_minutes_per_month = 1
    organization.save()
    VoiceCall.objects.filter(session=voice_session).update(seconds=61, ended_at=timezone.now())
    assert run(_refused_with(call_for(learner, other.pk))) == 4402


def test_a_turn_the_learner_finished_is_kept_when_the_socket_drops(voice_session):
    learner = voice_session.learner
    speech = spoken("Can we talk about the price of your support plan today?")

    async def drop():
        client = call_for(learner, voice_session.pk)
        await client.connect()
        await client.wait_for("session.ready")
        await client.send_json({"type": "start"})
        await client.speak(silence(300) + speech + silence(400))
        await client.disconnect()  # before the turn was decided
        for _ in range(300):
            await asyncio.sleep(0.1)
            rows = await _stored_reply()
            if len(rows) > 1:
                return rows, client
        return rows, client

    async def _stored_reply():
        from channels.db import database_sync_to_async

        return await database_sync_to_async(
            lambda: list(
                Message.objects.filter(session=voice_session).values_list("role", "status", "text")
            )
        )()

    rows, client = run(drop())
    roles = [row[0] for row in rows]
    assert "learner" in roles, describe(client)
