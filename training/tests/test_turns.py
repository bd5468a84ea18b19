"""Replies as turns: generated in this process (no queue), interruptible, and always ended."""

import asyncio
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from training import errors, sessions, streaming, turns
from training.models import Message, MessageStatus, SessionStatus, TrainingSession
from training.tests.factories import make_scenario
from training.tests.run_turns import finish_reply, run


def _posted(learner, organization, text="What matters most to you?"):
    session = sessions.start_session(actor=learner, scenario_id=make_scenario(organization).pk)
    return sessions.post_message(actor=learner, session_id=session.pk, text=text)


@pytest.mark.django_db(transaction=True)
def test_a_reply_is_generated_in_this_process_without_any_worker(bob, acme):
    posted = _posted(bob, acme)  # commits, so the turn starts on this process's turn loop
    kinds = [kind for kind, _ in streaming.read(posted.reply.pk, timeout_seconds=10)]
    assert kinds[0] == "start"
    assert kinds[-1] == "done"
    reply = Message.objects.get(pk=posted.reply.pk)
    assert reply.status == MessageStatus.COMPLETE
    assert "Your price is 30% higher." in reply.text


async def _take(reply_id, count):
    """Iterate a turn for `count` deltas, then stop listening (as barge-in does)."""
    taken = []
    generator = turns.stream_reply(reply_id)
    async for text in generator:
        taken.append(text)
        if len(taken) == count:
            break
    await generator.aclose()
    return taken


@pytest.mark.django_db
def test_closing_a_turn_mid_reply_keeps_only_what_was_said_marked_interrupted(bob, acme):
    posted = _posted(bob, acme)
    taken = run(_take(posted.reply.pk, 3))
    reply = Message.objects.get(pk=posted.reply.pk)
    assert reply.interrupted is True
    assert reply.status == MessageStatus.COMPLETE
    assert reply.text == "".join(taken).strip()
    assert reply.text
    assert "30% higher" not in reply.text  # the rest was never produced
    events = list(streaming.read(reply.pk, timeout_seconds=2))
    assert events[-1][0] == "done"
    assert events[-1][1]["interrupted"] is True
    # The learner can speak again at once.
    sessions.post_message(actor=bob, session_id=reply.session_id, text="Let me stop you there.")


@pytest.mark.django_db
def test_cancelling_the_task_running_a_turn_interrupts_it_the_same_way(bob, acme, settings):
    settings.LLM_STAND_IN_TOKEN_DELAY_MS = 30
    posted = _posted(bob, acme)

    async def barge_in():
        taken = []

        async def listen():
            async for text in turns.stream_reply(posted.reply.pk):
                taken.append(text)

        task = asyncio.create_task(listen())
        while len(taken) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return taken

    taken = run(barge_in())
    reply = Message.objects.get(pk=posted.reply.pk)
    assert reply.interrupted is True
    assert reply.text.startswith("".join(taken).strip())
    assert "30% higher" not in reply.text


@pytest.mark.django_db
def test_a_reply_slow_to_start_tells_the_learner_why(bob, acme, settings):
    settings.LLM_STAND_IN_TOKEN_DELAY_MS = 700  # the stand-in waits before its first word
    settings.REPLY_SLOW_START_SECONDS = 0.3
    posted = _posted(bob, acme, text="Hello?")
    finish_reply(posted.reply.pk)
    statuses = [data for kind, data in streaming.read(posted.reply.pk, 2) if kind == "status"]
    assert len(statuses) == 1
    assert "slow to answer" in statuses[0]["text"]
    assert "saved" in statuses[0]["text"]


@pytest.mark.django_db
def test_the_session_clock_does_not_run_out_while_a_reply_is_pending(bob, acme, settings):
    posted = _posted(bob, acme)
    session = posted.reply.session
    TrainingSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=5)
    )
    assert sessions.end_expired_sessions() == 0  # a reply is pending: the clock waits
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE
    finish_reply(posted.reply.pk)
    assert sessions.end_expired_sessions() == 1
    session.refresh_from_db()
    assert session.ended_reason == "time_limit"


@pytest.mark.django_db
def test_time_spent_waiting_for_a_slow_ai_service_is_given_back(bob, acme, settings):
    settings.LLM_STAND_IN_TOKEN_DELAY_MS = 500
    settings.REPLY_SLOW_START_SECONDS = 0.2
    posted = _posted(bob, acme)
    before = TrainingSession.objects.get(pk=posted.reply.session_id).expires_at
    finish_reply(posted.reply.pk)
    after = TrainingSession.objects.get(pk=posted.reply.session_id).expires_at
    assert after - before >= timedelta(milliseconds=450)


@pytest.mark.django_db
def test_a_reply_left_streaming_by_a_lost_turn_is_finished_and_the_session_goes_on(
    bob, acme, settings
):
    settings.REPLY_STALL_SECONDS = 1
    posted = _posted(bob, acme)  # never generated: its process "crashed" (on_commit unrun)
    blocked = errors.TrainingError
    Message.objects.filter(pk=posted.reply.pk).update(created_at=timezone.now())
    with pytest.raises(blocked, match="Wait for the reply"):
        sessions.post_message(actor=bob, session_id=posted.reply.session_id, text="Hello?")
    time.sleep(1.1)
    # Posting again finishes the lost reply on the spot instead of answering 409 forever.
    again = sessions.post_message(actor=bob, session_id=posted.reply.session_id, text="Hello?")
    lost = Message.objects.get(pk=posted.reply.pk)
    assert lost.status == MessageStatus.INCOMPLETE
    assert "send it again" in lost.error
    assert again.reply.status == MessageStatus.STREAMING


@pytest.mark.django_db
def test_a_live_turn_is_never_taken_for_a_lost_one(bob, acme, settings):
    settings.REPLY_STALL_SECONDS = 1
    posted = _posted(bob, acme)
    Message.objects.filter(pk=posted.reply.pk).update(
        created_at=timezone.now() - timedelta(seconds=5)
    )
    streaming.publish(posted.reply.pk, streaming.ALIVE)  # its turn's heartbeat
    assert turns.finish_abandoned_replies() == 0
    assert Message.objects.get(pk=posted.reply.pk).status == MessageStatus.STREAMING
    # ...until the heartbeat stops, or Redis is wiped.
    streaming.publisher().delete(f"chat:reply:{posted.reply.pk}")
    assert turns.finish_abandoned_replies() == 1


# --- when Redis falters ----------------------------------------------------------------


@pytest.fixture
def stream_redis_stopped(stopped_redis_url, settings):
    """Reply streams on a Redis of their own, which has stopped."""
    settings.REDIS_CACHE_URL = stopped_redis_url


@pytest.mark.django_db
def test_with_redis_down_the_reply_is_still_written_and_readers_are_told_why(
    bob, acme, stream_redis_stopped
):
    posted = _posted(bob, acme)
    finish_reply(posted.reply.pk)
    reply = Message.objects.get(pk=posted.reply.pk)
    assert reply.status == MessageStatus.COMPLETE
    assert "Your price is 30% higher." in reply.text  # nothing lost

    async def read_all():
        return [(kind, data) async for _, kind, data in streaming.follow(reply.pk)]

    events = run(read_all())
    assert events[0] == ("status", {"text": streaming.UNAVAILABLE})
    kind, data = events[-1]
    assert kind == "done"
    assert "30% higher" in data["html"]


@pytest.mark.django_db
def test_with_redis_down_only_the_age_of_a_reply_can_mark_it_lost(
    bob, acme, settings, stream_redis_stopped
):
    settings.REPLY_STALL_SECONDS = 1
    posted = _posted(bob, acme)
    Message.objects.filter(pk=posted.reply.pk).update(
        created_at=timezone.now() - timedelta(seconds=5)
    )
    assert turns.finish_abandoned_replies() == 0  # it may be alive: its stream is unreadable
    Message.objects.filter(pk=posted.reply.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.REPLY_TIMEOUT_SECONDS + 2)
    )
    assert turns.finish_abandoned_replies() == 1  # older than any live turn can be


# --- on the real worker ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_maintenance_worker_finishes_replies_lost_with_their_process(bob, acme, settings):
    from celery import current_app
    from celery.contrib.testing.worker import start_worker

    from training.tasks import finish_abandoned_replies

    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    reply = Message.objects.create(session=session, role="persona", status=MessageStatus.STREAMING)
    Message.objects.filter(pk=reply.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    app = current_app._get_current_object()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert finish_abandoned_replies.delay().get(timeout=30) == 1
    reply.refresh_from_db()
    assert reply.status == MessageStatus.INCOMPLETE
    assert "send it again" in reply.error
    kinds = [kind for kind, _ in streaming.read(reply.pk, timeout_seconds=2)]
    assert kinds == ["failed"]  # a page waiting on it shows the retry message at once


@pytest.mark.django_db
def test_with_all_of_redis_down_a_training_question_is_still_answered_from_the_documents(
    alice, bob, acme, settings, stopped_redis_url
):
    from django.test import override_settings

    from core.redis_clients import forget_cache_failures
    from knowledge.tests import samples
    from knowledge.tests.factories import ingested
    from training.models import ScenarioMode

    ingested(alice, samples.RETURNS_POLICY_HTML.encode(), "policies.html")
    scenario = make_scenario(acme, mode=ScenarioMode.TRAINING, title="Support desk")
    session = sessions.start_session(actor=bob, scenario_id=scenario.pk)
    cache_down = {**settings.CACHES["default"], "LOCATION": stopped_redis_url}
    with override_settings(CACHES={"default": cache_down}, REDIS_CACHE_URL=stopped_redis_url):
        try:
            posted = sessions.post_message(
                actor=bob, session_id=session.pk, text="How many days to return unopened items?"
            )  # the rate limit lets it through (and logs)
            finish_reply(posted.reply.pk)
        finally:
            forget_cache_failures()
    reply = Message.objects.get(pk=posted.reply.pk)
    assert reply.status == MessageStatus.COMPLETE
    assert "30 days" in reply.text  # retrieval answered from PostgreSQL, uncached


# --- review mends --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_process_stopping_mid_reply_saves_it_incomplete_with_a_retry_message(bob, acme, settings):
    settings.LLM_STAND_IN_TOKEN_DELAY_MS = 200
    posted = _posted(bob, acme)  # committed; the global loop starts it too, so take ours
    Message.objects.filter(pk=posted.reply.pk).update(status=MessageStatus.COMPLETE)
    reply = Message.objects.create(
        session=posted.reply.session, role="persona", status=MessageStatus.STREAMING
    )
    loop = turns._TurnLoop()
    loop.submit(turns._run_on_turn_loop(reply.pk))
    for kind, _ in streaming.read(reply.pk, timeout_seconds=10):
        if kind in ("token", "timeout"):
            break  # mid-reply
    loop.shutdown()
    saved = Message.objects.get(pk=reply.pk)
    assert saved.status == MessageStatus.INCOMPLETE
    assert "restarted" in saved.error
    assert "send it again" in saved.error


@pytest.mark.django_db
def test_a_live_turn_taken_for_lost_during_a_redis_blink_still_saves_its_reply(bob, acme):
    from asgiref.sync import sync_to_async

    posted = _posted(bob, acme)

    async def blink():
        parts = []
        async for text in turns.stream_reply(posted.reply.pk):
            parts.append(text)
            if len(parts) == 1:  # the reconciler judged it lost meanwhile
                await sync_to_async(Message.objects.filter(pk=posted.reply.pk).update)(
                    status=MessageStatus.INCOMPLETE, error=turns.ABANDONED[:300]
                )
        return "".join(parts)

    said = run(blink())
    reply = Message.objects.get(pk=posted.reply.pk)
    assert reply.status == MessageStatus.COMPLETE
    assert reply.text == said.strip()
    assert reply.error == ""


@pytest.mark.django_db
def test_a_reader_of_a_saved_reply_whose_last_event_was_lost_gets_it_from_the_database(
    bob, acme, monkeypatch
):
    monkeypatch.setattr(streaming, "BLOCK_MS", 200)
    posted = _posted(bob, acme)
    streaming.publish(posted.reply.pk, "start", citations=[], model="offline-stand-in")
    Message.objects.filter(pk=posted.reply.pk).update(
        status=MessageStatus.COMPLETE, text="Saved while Redis was away."
    )

    async def read_all():
        return [(kind, data) async for _, kind, data in streaming.follow(posted.reply.pk)]

    events = run(read_all())
    assert events[0][0] == "start"
    kind, data = events[-1]
    assert kind == "done"
    assert "Saved while Redis was away." in data["html"]
