"""A reply drafted at a pause on the recogniser's partial text, before its final transcript.

A streaming recogniser (here a scripted one speaking the pipeline's SpeechToText
protocol) gives the whole sentence as partial text a moment after the learner's last word;
its final transcript comes later. The model is asked once, on the partial, before the
final is known, and that draft becomes the reply when the final has the same words. When
the words differ, or the learner goes on, the draft is thrown away and nothing of it is
spoken or stored.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from knowledge.tests.openai_wire import OpenAIWireServer
from training.models import Message, MessageRole
from training.tests.chat_wire import add_chat
from training.tests.run_turns import run
from voice import metrics
from voice.pipeline import Conversation, finish_background_work
from voice.tests.speech import silence, spoken

SENTENCE = "I wanted to ask about the price of your support plan."
FRAME = 640  # 20 ms of 16 kHz PCM


class ScriptedRecognizer:
    """Partial text (the next of `partials`) once 100 ms of silence follow speech; the
    final `final_after` seconds after the segment is finished. Steps go into `log`."""

    model_id = "scripted"

    def __init__(self, log: list[str], partials: list[str], final: str, final_after: float) -> None:
        self.log, self.partials, self.final, self.final_after = log, partials, final, final_after

    async def open(self, on_partial=None):
        return _ScriptedStream(self, on_partial)


class _ScriptedStream:
    def __init__(self, owner: ScriptedRecognizer, on_partial) -> None:
        self.owner, self.on_partial = owner, on_partial
        self.voiced, self.silent_ms, self.told = False, 0.0, False

    async def send_audio(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        if np.sqrt(np.mean(samples * samples)) > 300:
            self.voiced, self.silent_ms, self.told = True, 0.0, False
            return
        self.silent_ms += len(pcm) / 32
        if self.voiced and not self.told and self.silent_ms >= 100 and self.on_partial:
            self.told = True
            self.owner.log.append("partial")
            partials = self.owner.partials
            await self.on_partial(partials.pop(0) if len(partials) > 1 else partials[0])

    async def finish_segment(self) -> str:
        await asyncio.sleep(self.owner.final_after)
        self.owner.log.append("final")
        self.voiced = self.told = False
        return self.owner.final

    async def close(self) -> None:
        return None


class ToneSpeech:
    """200 ms of a quiet tone per clause; each clause asked for goes into `log`."""

    model_id = "tone"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def open(self, voice_id: str):
        return self

    async def synthesize(self, text: str):
        self.log.append(f"synthesize {text}")
        yield (np.sin(np.arange(4800) / 10) * 3000).astype("<i2").tobytes()

    async def close(self) -> None:
        return None


@pytest.fixture
def wire(settings):
    with OpenAIWireServer() as server:
        server.chat = add_chat(server, reply="Fair enough. What would you like to know?")
        settings.LLM_PROVIDER = "openai"
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_API_KEY = "sk-test"
        settings.VOICE_END_OF_TURN_MODEL = False  # the silence fallback decides
        settings.VOICE_SILENCE_FALLBACK_MS = 800
        yield server


def _call(voice_session, recognizer, speech: bytes, log: list[str], wire) -> list[dict]:
    events: list[dict] = []
    sent: list[bytes] = []

    async def send_json(event):
        events.append(event)
        if event["type"] in ("reply.done", "transcript.final", "reply.audio_started"):
            log.append(event["type"])

    async def send_bytes(pcm):
        sent.append(pcm)

    learner = voice_session.learner

    async def talk():
        conversation = Conversation(
            user=learner,
            session_id=voice_session.pk,
            stt=recognizer,
            tts=ToneSpeech(log),
            voice_id="",
            send_json=send_json,
            send_bytes=send_bytes,
        )
        await conversation.start("hands_free")
        requests_seen, discarded = 0, _drafts()[1]
        for start in range(0, len(speech), FRAME):
            await conversation.feed_audio(speech[start : start + FRAME])
            if len(wire.requests) > requests_seen:
                requests_seen = len(wire.requests)
                log.append("model asked")
            if _drafts()[1] > discarded:
                discarded = _drafts()[1]
                log.append("draft discarded")
            await asyncio.sleep(0.02)  # as a microphone sends it
        for _ in range(100):
            if any(e["type"] == "reply.done" for e in events):
                break
            await asyncio.sleep(0.05)
        await conversation.close()
        await finish_background_work()

    run(talk())
    events.append({"type": "audio sent", "bytes": sum(len(pcm) for pcm in sent)})
    return events


def _trimmed(pcm: bytes) -> bytes:
    """Without the synthesizer's trailing silence (so the test sets the pause)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    return samples[: np.nonzero(np.abs(samples) > 300)[0][-1] + 1].tobytes()


def _drafts() -> tuple[float, float]:
    return (
        metrics.DRAFTS.labels(outcome="used")._value.get(),
        metrics.DRAFTS.labels(outcome="discarded")._value.get(),
    )


def test_the_reply_is_asked_for_on_the_partial_text_before_the_final_transcript(
    voice_session, wire
):
    log: list[str] = []
    recognizer = ScriptedRecognizer(log, [SENTENCE], final=SENTENCE, final_after=1.5)
    used, discarded = _drafts()

    events = _call(
        voice_session, recognizer, silence(300) + spoken(SENTENCE) + silence(1800), log, wire
    )

    assert log.index("partial") < log.index("model asked") < log.index("final"), log
    assert len(wire.requests) == 1, "the model is asked once: the draft becomes the reply"
    prompt = wire.requests[0].body["messages"]
    assert SENTENCE in prompt[-1]["content"]
    assert _drafts() == (used + 1, discarded)
    learner, reply = Message.objects.filter(session=voice_session).order_by("pk")[1:3]
    assert (learner.role, learner.text) == (MessageRole.LEARNER, SENTENCE)
    assert reply.text == "Fair enough. What would you like to know?"
    assert [e["text"] for e in events if e["type"] == "transcript.final"] == [SENTENCE]
    # Its first clause was synthesized while the turn was being confirmed, once.
    assert log.count("synthesize Fair enough.") == 1
    assert log.index("synthesize Fair enough.") < log.index("transcript.final"), log
    assert log.index("transcript.final") < log.index("reply.audio_started"), "spoken after"
    assert events[-1]["bytes"] == 2 * 9600, "both clauses' audio was sent, the first whole"


def test_a_draft_on_different_words_is_thrown_away_and_the_reply_uses_the_final(
    voice_session, wire
):
    log: list[str] = []
    partial = "I wanted to ask about the rice of your support plan."
    recognizer = ScriptedRecognizer(log, [partial], final=SENTENCE, final_after=0.6)
    used, discarded = _drafts()

    _call(voice_session, recognizer, silence(300) + spoken(SENTENCE) + silence(1800), log, wire)

    assert len(wire.requests) == 2, "drafted on the partial, then again on the final"
    assert partial in wire.requests[0].body["messages"][-1]["content"]
    assert SENTENCE in wire.requests[1].body["messages"][-1]["content"]
    assert _drafts() == (used + 1, discarded + 1)
    stored = list(Message.objects.filter(session=voice_session).values_list("role", "text"))
    assert stored[1] == (MessageRole.LEARNER, SENTENCE)
    assert len(stored) == 3, "one turn, one reply: the thrown-away draft left nothing"


def test_a_draft_at_a_pause_is_thrown_away_when_the_learner_goes_on(voice_session, wire):
    """The pause is longer than the draft's but shorter than the VAD's stop: one segment."""
    log: list[str] = []
    first, rest = "Hello Dana.", "I wanted to ask about the price of your support plan."
    whole = f"{first} {rest}"
    recognizer = ScriptedRecognizer(log, [first, whole], final=whole, final_after=0.3)
    used, discarded = _drafts()
    speech = silence(300) + _trimmed(spoken(first)) + silence(150) + spoken(rest) + silence(1800)

    events = _call(voice_session, recognizer, speech, log, wire)

    kinds = [e["type"] for e in events]
    assert kinds.count("vad.speech_stopped") == 1, "one segment: the pause was short"
    # (The first draft may be thrown away before its request is even sent.)
    assert whole in wire.requests[-1].body["messages"][-1]["content"]
    assert _drafts() == (used + 1, discarded + 1), "the draft on 'Hello Dana.' was thrown away"
    first_partial = log.index("partial")
    assert log.index("draft discarded") < log.index("partial", first_partial + 1), (
        "thrown away when the learner went on, before the next partial"
    )
    stored = list(Message.objects.filter(session=voice_session).values_list("role", "text"))
    assert [role for role, _ in stored] == ["persona", "learner", "persona"]
    assert stored[1][1] == whole


def test_no_draft_is_started_on_partial_text_that_does_not_end_a_sentence(voice_session, wire):
    """A pause after "Hello Dana," is a breath, not a probable end of turn."""
    log: list[str] = []
    whole = "Hello Dana, I wanted to ask about the price of your support plan."
    recognizer = ScriptedRecognizer(log, ["Hello Dana,", whole], final=whole, final_after=0.3)
    used, discarded = _drafts()

    _call(voice_session, recognizer, silence(300) + spoken(whole) + silence(1800), log, wire)

    assert log.count("partial") >= 2, "a partial at the comma's pause, more at the end"
    assert len(wire.requests) == 1
    assert whole in wire.requests[0].body["messages"][-1]["content"]
    assert _drafts() == (used + 1, discarded)
