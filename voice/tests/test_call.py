"""A voice call end to end through the real consumer, channel layer and offline models:
speech synthesized by Piper goes in, the persona's transcript, text and audio come out,
and the turn is stored with its timings."""

from __future__ import annotations

from training.models import Message, MessageRole
from training.tests.run_turns import run
from voice.tests.speech import call_for, silence, spoken

SENTENCE = "Hello Dana, I wanted to ask about the price of your support plan."


def test_a_spoken_turn_gets_a_spoken_reply_and_is_stored_with_its_timings(voice_session):
    learner = voice_session.learner
    speech = silence(300) + spoken(SENTENCE) + silence(1500)

    async def talk():
        client = call_for(learner, voice_session.pk)
        assert await client.connect()
        ready = await client.wait_for("session.ready")
        await client.send_json({"type": "start"})
        await client.speak(speech)
        done = await client.wait_for("reply.done", timeout=60)
        await client.disconnect()
        return client, ready, done

    client, ready, done = run(talk())
    assert ready["input_sample_rate"] == 16000
    assert ready["output_sample_rate"] == 24000
    assert ready["messages"][0]["role"] == "persona"  # the opening line
    final = client.of_type("transcript.final")[0]
    assert "price" in final["text"].lower()
    assert "support" in final["text"].lower()
    assert client.of_type("reply.text_delta"), "the reply's text streams"
    assert client.of_type("reply.audio_started")[0]["sample_rate"] == 24000
    assert len(client.audio) > 24000 * 2 * 0.5, "at least half a second of reply audio"
    assert not done["interrupted"]

    learner_message = Message.objects.get(pk=final["message_id"])
    assert learner_message.role == MessageRole.LEARNER
    assert learner_message.text == final["text"]
    assert learner_message.voice["speech_ms"] > 2000
    reply = Message.objects.get(pk=done["reply_id"])
    assert reply.text
    assert reply.text == done["text"]
    timings = reply.voice["timings_ms"]
    for stage in ("end_of_speech_to_decision", "final_transcript_to_first_token", "voice_to_voice"):
        assert stage in timings
    assert reply.voice["audio_ms"] > 500
    assert client.of_type("turn.metrics")[0]["timings_ms"] == timings
