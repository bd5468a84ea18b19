"""Demo content of voice: the renewal scenario speaks with the offline voice, and Jordan has
a finished voice session with its debrief, delivery feedback and turn timings.

The session's rows are written directly (no microphone at seed time); their figures are
typical of this pipeline fully offline on two cores (BENCHMARKS.md, "Voice"). A real call
is one click away: "Practise by voice" in the library.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TextIO

from django.utils import timezone

from accounts.models import Organization, User
from training import debriefs, sessions
from training.models import Channel, Message, MessageRole, Scenario, TrainingSession

TURNS = [
    ("Thanks for taking the call, Dana. Before we get to price, what would a day of "
     "downtime cost your team?", 6100,
     "Honestly? About forty thousand dollars, and a very unhappy board.", False),
    ("Um, so, I understand the other quote is lower. What matters more to you, the lowest "
     "price or incidents fixed in under an hour?", 7400,
     "Fixed fast, obviously. But your support was slow last time, and I", True),
    ("That delay was on us, and we changed it: premium support now answers production "
     "incidents within an hour, with a named engineer.", 7900,
     "A named engineer would help. What would switching cost us?", False),
    ("There's no migration; your team keeps working as it does. Could we book a review call "
     "next Tuesday and start a two week trial?", 7000,
     "Alright, Tuesday works. Send me the details.", False),
]  # fmt: skip
TIMINGS = [
    {"end_of_speech_to_final_transcript": 430, "final_transcript_to_decision": 110,
     "decision_to_first_token": 12, "first_token_to_first_audio": 240,
     "first_audio_to_first_frame": 2, "voice_to_voice": 794},
    {"end_of_speech_to_final_transcript": 520, "final_transcript_to_decision": 90,
     "decision_to_first_token": 9, "first_token_to_first_audio": 260,
     "first_audio_to_first_frame": 3, "voice_to_voice": 882},
    {"end_of_speech_to_final_transcript": 470, "final_transcript_to_decision": 140,
     "decision_to_first_token": 14, "first_token_to_first_audio": 230,
     "first_audio_to_first_frame": 2, "voice_to_voice": 856},
    {"end_of_speech_to_final_transcript": 410, "final_transcript_to_decision": 760,
     "decision_to_first_token": 11, "first_token_to_first_audio": 220,
     "first_audio_to_first_frame": 2, "voice_to_voice": 1403},
]  # fmt: skip


def seed(organization: Organization, stdout: TextIO) -> None:
    renewal = (
        Scenario.objects.current()
        .filter(organization=organization, title__startswith="Renewal")
        .first()
    )
    jordan = User.objects.filter(email="jordan@demo.avataradam.local").first()
    if renewal is None or jordan is None:
        return
    if not renewal.voice:
        Scenario.objects.filter(pk=renewal.pk).update(voice="joe")
    if TrainingSession.objects.filter(learner=jordan, channel=Channel.VOICE).exists():
        return
    session = sessions.start_session(actor=jordan, scenario_id=renewal.pk, channel=Channel.VOICE)
    clock = timezone.now() - timedelta(hours=20)
    TrainingSession.objects.filter(pk=session.pk).update(started_at=clock)
    Message.objects.filter(session=session).update(created_at=clock)
    clock += timedelta(seconds=4)
    for (said, speech_ms, reply, interrupted), timings in zip(TURNS, TIMINGS, strict=True):
        clock += timedelta(milliseconds=900 + speech_ms)
        learner = Message.objects.create(
            session=session, role=MessageRole.LEARNER, text=said,
            voice={"speech_ms": speech_ms, "words": len(said.split())},
        )  # fmt: skip
        audio_ms = 420 * len(reply.split())
        played_ms = int(audio_ms * 0.6) if interrupted else audio_ms
        persona = Message.objects.create(
            session=session, role=MessageRole.PERSONA, text=reply, model="offline-stand-in",
            interrupted=interrupted,
            voice={"audio_ms": audio_ms, "played_ms": played_ms, "timings_ms": timings,
                   "interrupted_by_learner": interrupted},
        )  # fmt: skip
        Message.objects.filter(pk=learner.pk).update(created_at=clock)
        Message.objects.filter(pk=persona.pk).update(created_at=clock)
        clock += timedelta(milliseconds=timings["voice_to_voice"] + played_ms)
    sessions.end_session(actor=jordan, session_id=session.pk)
    debriefs.grade_session(session.pk)
    stdout.write(f"  a finished voice session with delivery feedback for {jordan.email}\n")
