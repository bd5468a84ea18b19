"""The database is not on the way to the first audio: a confirmed turn's reply starts
speaking from its draft while the turn is stored, under the ids the page was told; a
store that is refused stops the reply and hands the learner their words back."""

from __future__ import annotations

import asyncio
import threading

from django.db import connection, transaction

from training.models import Message, MessageRole, TrainingSession
from training.tests.run_turns import run
from voice.clauses import ClauseSplitter
from voice.tests.speech import call_for, describe, silence, spoken
from voice.tts import OUTPUT_SAMPLE_RATE
from voice.tts.local import PiperSpeech

SENTENCE = "Hello Dana, I wanted to ask about the price of your support plan."


class SessionLock(threading.Thread):
    """Holds the session's row lock (as a slow or busy database would) until released:
    storing a turn waits for it."""

    def __init__(self, session_id: int) -> None:
        super().__init__(daemon=True)
        self.session_id = session_id
        self.locked = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                TrainingSession.objects.select_for_update().get(pk=self.session_id)
                self.locked.set()
                self.release.wait(60)
        finally:
            connection.close()

    def __enter__(self) -> SessionLock:
        self.start()
        assert self.locked.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.join(10)


def _messages(session_id: int) -> list[tuple[int, str]]:
    try:
        return list(
            Message.objects.filter(session_id=session_id).order_by("pk").values_list("pk", "role")
        )
    finally:
        connection.close()  # this may be a worker thread of the test's loop


async def _first_turn_with_the_store_held(learner, session_id: int):
    """Connect, speak a turn while the session's row is locked, and let go once the reply's
    audio has started: (client, `reply.audio_started`, audio frames and stored messages
    then)."""
    client = call_for(learner, session_id)
    assert await client.connect()
    await client.wait_for("session.ready")
    await client.send_json({"type": "start"})
    with SessionLock(session_id):
        await client.speak(silence(300) + spoken(SENTENCE) + silence(1500))
        started = await client.wait_for("reply.audio_started", timeout=60)
        deadline = asyncio.get_running_loop().time() + 30
        while client.audio_frames < 5 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        frames, stored = client.audio_frames, await asyncio.to_thread(_messages, session_id)
    return client, started, frames, stored


def test_the_reply_speaks_while_its_turn_is_stored_under_the_ids_the_page_was_told(
    voice_session,
):
    learner = voice_session.learner

    async def talk():
        turn = await _first_turn_with_the_store_held(learner, voice_session.pk)
        client, started, frames, stored = turn
        done = await client.wait_for("reply.done", timeout=60)
        await client.disconnect()
        return client, started, frames, stored, done

    client, started, frames, stored, done = run(talk())
    assert frames >= 5, "the reply's audio went out while the turn could not be stored"
    assert [role for _, role in stored] == [MessageRole.PERSONA], "nothing stored before"
    final = client.of_type("transcript.final")[0]
    messages = _messages(voice_session.pk)
    assert [role for _, role in messages] == ["persona", "learner", "persona"]
    assert messages[1][0] == final["message_id"], "the turn is stored under the id announced"
    assert messages[2][0] == started["reply_id"] == done["reply_id"]
    reply = Message.objects.get(pk=done["reply_id"])
    assert reply.text
    assert reply.text == done["text"]
    assert not done["interrupted"]
    assert not client.of_type("error"), describe(client)
    # The first clause, spoken ahead of the stored text, is not spoken a second time: the
    # audio is as long as the reply's clauses rendered once each.
    splitter = ClauseSplitter()
    clauses = [c.strip() for c in [*splitter.feed(reply.text), *splitter.flush()] if c.strip()]
    rendered = [len(PiperSpeech.shared().render(c)) / 2 / OUTPUT_SAMPLE_RATE for c in clauses]
    heard = len(client.audio) / 2 / OUTPUT_SAMPLE_RATE
    assert abs(heard - sum(rendered)) < 0.5 * rendered[0], (heard, rendered, clauses)


def test_a_turn_refused_while_its_reply_speaks_stops_the_reply_and_gives_the_words_back(
    voice_session, settings
):
    """The store is refused (here: the learner's message rate) after the reply's first
    audio went out: the reply stops, nothing is stored, the learner gets their words, and
    the call listens on: the next turn is answered."""
    learner = voice_session.learner
    settings.MESSAGE_RATE_PER_MINUTE = 0

    async def talk():
        client, started, _, _ = await _first_turn_with_the_store_held(learner, voice_session.pk)
        error = await client.wait_for("error", timeout=30)
        interrupted = await client.wait_for("reply.interrupted", timeout=30)
        refused_messages = await asyncio.to_thread(_messages, voice_session.pk)
        settings.MESSAGE_RATE_PER_MINUTE = 100
        await client.speak(silence(300) + spoken(SENTENCE) + silence(1500))
        done = await client.wait_for("reply.done", timeout=60)
        await client.disconnect()
        return client, started, error, interrupted, refused_messages, done

    client, started, error, interrupted, refused_messages, done = run(talk())
    assert error["code"] == "turn_refused", describe(client)
    assert "too quickly" in error["message"]
    assert "price" in error["message"].lower(), "the learner's words come back to them"
    assert interrupted["reply_id"] == started["reply_id"]
    assert interrupted["resumable"] is False
    assert [role for _, role in refused_messages] == ["persona"], "the refused turn left no rows"
    assert not Message.objects.filter(pk=started["reply_id"]).exists()
    # The call went on: the next turn is stored and answered.
    assert done["reply_id"] != started["reply_id"]
    assert [r for _, r in _messages(voice_session.pk)] == ["persona", "learner", "persona"]
    assert done["text"]
