"""Delivery figures of voice sessions (training.delivery), in the API and the debrief."""

from datetime import UTC, datetime, timedelta

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from training.delivery import count_fillers, delivery_from_messages, delivery_of
from training.models import Channel, Message, MessageRole, SessionStatus, TrainingSession
from training.tests.factories import make_scenario

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _session(learner, scenario, channel=Channel.VOICE):
    return TrainingSession.objects.create(
        organization=scenario.organization,
        learner=learner,
        scenario=scenario,
        mode=scenario.mode,
        channel=channel,
        status=SessionStatus.ENDED,
        ended_at=T0 + timedelta(minutes=5),
    )


def _message(session, role, seconds, text="", voice=None, interrupted=False):
    message = Message.objects.create(
        session=session, role=role, text=text, voice=voice or {}, interrupted=interrupted
    )
    Message.objects.filter(pk=message.pk).update(created_at=T0 + timedelta(seconds=seconds))
    return message


def _reply_voice(played_ms, audio_ms=None, voice_to_voice=1000, interrupted=False):
    return {
        "audio_ms": played_ms if audio_ms is None else audio_ms,
        "played_ms": played_ms,
        "timings_ms": {
            "end_of_speech_to_final_transcript": 500,
            "final_transcript_to_decision": 300,
            "decision_to_first_token": 300,
            "first_token_to_first_audio": 200,
            "first_audio_to_first_frame": 100,
            "voice_to_voice": voice_to_voice,
        },
        "interrupted_by_learner": interrupted,
    }


def _voice_call(learner, scenario):
    """A role-play call, computed by hand below.

    Learner turns (speech ms, words): 6000/10, 12000/30, 18000/50, 4000/10: 40 s, 100 words.
    Replies heard: 8000 + 4000 (talked over) + 6000 ms; voice to voice 1200, 1000, 800.
    Every reply's lead-in to its first sound is 300 + 200 + 100 = 600 ms and every turn's
    end of speech to its transcript 500 + 300 = 800 ms.
    """
    session = _session(learner, scenario)
    P, L = MessageRole.PERSONA, MessageRole.LEARNER
    _message(session, P, 0, "I'm not sure we're renewing.")  # the opening: not spoken
    # fillers: um, you know
    _message(session, L, 10, "Um, what matters most to you, you know, this year?",
             {"speech_ms": 6000, "words": 10})  # fmt: skip
    _message(session, P, 10.05, "Uptime.", _reply_voice(8000, voice_to_voice=1200))
    # Ends at 10.05 + 0.6 + 8 = 18.65 s. The answer is stored at 32.95 s: it started at
    # 32.95 - 0.8 - 12 = 20.15 s, 1500 ms after the reply ended.
    # fillers: i mean, kind of ("what kind of" is a question, not a filler)
    _message(session, L, 32.95,
             "I mean, our uptime is kind of the best. What kind of support do you need?",
             {"speech_ms": 12000, "words": 30})  # fmt: skip
    talked_over = _reply_voice(4000, 10000, voice_to_voice=1000, interrupted=True)
    _message(session, P, 33.0, "We need", talked_over, interrupted=True)
    # Talked over: no pause is measured after it (it would be 3550 ms).
    # fillers: like (twice), uh; "umbrella" is a word
    _message(session, L, 59.95,
             "Like, uh, we could, like, book a review call on Friday. Umbrella pricing too.",
             {"speech_ms": 18000, "words": 50})  # fmt: skip
    _message(session, P, 60.0, "Friday works.", _reply_voice(6000, voice_to_voice=800))
    # Ends at 60 + 0.6 + 6 = 66.6 s; the last turn (no reply after it) started at
    # 70 - 4 = 66.0 s: -600 ms, counted as 0.
    _message(session, L, 70, "Great, thanks so much.", {"speech_ms": 4000, "words": 10})
    return session


@pytest.mark.django_db
def test_the_figures_of_a_voice_call(bob, acme, django_assert_num_queries):
    session = _voice_call(bob, make_scenario(acme))
    with django_assert_num_queries(1):
        delivery = delivery_of(session)
    assert delivery is not None
    assert delivery.voice_turns == 4
    assert delivery.words == 100
    assert delivery.speech_seconds == 40.0
    assert delivery.words_per_minute == 150  # 100 words in 2/3 of a minute
    assert delivery.filler_count == 7
    assert delivery.fillers_per_minute == 10.5
    assert delivery.fillers == (
        ("like", 2), ("i mean", 1), ("kind of", 1), ("uh", 1), ("um", 1), ("you know", 1),
    )  # fmt: skip
    assert delivery.persona_played_seconds == 18.0
    assert delivery.talk_share_percent == 69.0  # 40 / (40 + 18)
    assert delivery.longest_monologue_seconds == 18.0
    assert delivery.learner_interruptions == 1
    assert delivery.persona_interruptions == 0
    assert delivery.persona_response_p50_ms == 1000
    assert delivery.persona_response_p95_ms == 1180  # 1000 + 0.9 × (1200 - 1000)
    assert delivery.learner_response_median_ms == 750  # of 1500 and 0
    assert len(delivery.tips) == 2
    assert "10.5 a minute" in delivery.tips[0]
    assert "“like”" in delivery.tips[0]
    assert "69% of the talking" in delivery.tips[1]
    assert "let the customer talk" in delivery.tips[1]


@pytest.mark.django_db
def test_text_sessions_and_voice_sessions_without_voice_turns_have_none(
    bob, acme, django_assert_num_queries
):
    scenario = make_scenario(acme)
    text = _session(bob, scenario, channel=Channel.TEXT)
    _message(text, MessageRole.LEARNER, 1, "Um, hello", {"speech_ms": 1000, "words": 2})
    with django_assert_num_queries(0):
        assert delivery_of(text) is None
    silent = _session(bob, scenario)
    _message(silent, MessageRole.PERSONA, 0, "Hello.")
    _message(silent, MessageRole.LEARNER, 5, "Typed, not spoken.")
    assert delivery_of(silent) is None
    assert delivery_of(_session(bob, scenario)) is None  # no messages at all


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Umbrella, ahead, errand, hummus, ermine, uh-huh, mm-hm.", {}),
        ("Um, umm, uhm, uh, uhh, er, erm, ah, hmm, hm.",
         {"um": 3, "uh": 2, "er": 1, "erm": 1, "ah": 1, "hmm": 2}),
        ("UM... Uh? UH!", {"um": 1, "uh": 2}),
        ("I like, the new plan. Would you like, a demo? It's like like broken.", {"like": 1}),
        ("It was like, slow. Like, really. It looks like a bug. I'd like that.", {"like": 2}),
        ("You know, it's fine. It's fine, you know? Do you know, the date? As you know, no.",
         {"you know": 2}),
        ("You know the date. Did you know?", {}),
        ("I mean, sure. What I mean, is this. I mean it.", {"i mean": 1}),
        ("It's kind of slow and sort of late. What kind of plan? A sort of deal. All kind of.",
         {"kind of": 1, "sort of": 1}),
        ("Kind of.", {"kind of": 1}),
        ("I don’t like, you know, the price.", {"you know": 1}),
    ],
)  # fmt: skip
def test_fillers_follow_the_documented_rule(text, expected):
    assert dict(count_fillers(text)) == expected


def _in_memory(role, text="", voice=None, at=0.0, interrupted=False):
    return Message(role=role, text=text, voice=voice or {}, interrupted=interrupted,
                   created_at=T0 + timedelta(seconds=at))  # fmt: skip


def test_missing_and_bad_figures_are_not_guessed():
    L, P = MessageRole.LEARNER, MessageRole.PERSONA
    messages = [
        # words missing: counted from the text; a reply without played_ms: its audio
        _in_memory(L, "one two three", {"speech_ms": 3000}, at=5),
        _in_memory(P, "Sure.", {"audio_ms": 2000}, at=5.1),
        # nonsense figures are ignored, never added
        _in_memory(L, "four", {"speech_ms": -5, "words": "many"}, at=9),
        _in_memory(P, "Ok.", {"played_ms": "a lot", "timings_ms": "fast"}, at=9.1),
        _in_memory(L, "five six", {"speech_ms": True, "words": 2}, at=12),
    ]
    delivery = delivery_from_messages(messages, roleplay=True)
    assert delivery is not None
    assert delivery.voice_turns == 1
    assert delivery.words == 3
    assert delivery.words_per_minute == 60
    assert delivery.persona_played_seconds == 2.0
    assert delivery.talk_share_percent == 60.0
    assert delivery.persona_response_p50_ms is None
    assert delivery.persona_response_p95_ms is None
    # The reply "Sure." was answered by "four", a turn without a speech time: no pause.
    assert delivery.learner_response_median_ms is None
    assert delivery.tips == ()  # 3 s of speech is too little to judge a pace


def _talker(words, speech_ms, turns=1):
    messages = []
    for turn in range(turns):
        spoken = {"speech_ms": speech_ms, "words": words}
        messages.append(_in_memory(MessageRole.LEARNER, "Fine.", spoken, at=turn * 100))
        reply = _reply_voice(speech_ms * 4)
        messages.append(_in_memory(MessageRole.PERSONA, "Go on.", reply, at=turn * 100 + 0.1))
    return messages


def test_the_tips_follow_their_thresholds():
    fast = delivery_from_messages(_talker(words=100, speech_ms=30_000), roleplay=True)
    assert fast.words_per_minute == 200
    assert [t for t in fast.tips if "slow down" in t]
    slow = delivery_from_messages(_talker(words=50, speech_ms=30_000), roleplay=True)
    assert slow.words_per_minute == 100
    assert [t for t in slow.tips if "pick up the pace" in t]
    easy = delivery_from_messages(_talker(words=75, speech_ms=30_000), roleplay=True)
    assert easy.tips == ()  # 150 wpm, 20% of the talking, no fillers
    short = delivery_from_messages(_talker(words=20, speech_ms=6_000), roleplay=True)
    assert short.words_per_minute == 200
    assert short.tips == ()  # too little speech to judge
    long = delivery_from_messages(_talker(words=225, speech_ms=90_000), roleplay=True)
    assert [t for t in long.tips if "longest turn ran 90 seconds" in t]

    talkative = [
        _in_memory(MessageRole.LEARNER, "Fine.", {"speech_ms": 30_000, "words": 75}),
        _in_memory(MessageRole.PERSONA, "Go on.", _reply_voice(5_000), at=0.1),
    ]
    assert [t for t in delivery_from_messages(talkative, roleplay=True).tips if "86%" in t]
    assert delivery_from_messages(talkative, roleplay=False).tips == ()  # asking a trainer

    over = []
    for turn in range(3):
        spoken = {"speech_ms": 1000, "words": 1}
        over.append(_in_memory(MessageRole.LEARNER, "So.", spoken, at=turn * 10))
        reply = _reply_voice(4000, interrupted=True)
        over.append(
            _in_memory(MessageRole.PERSONA, "We", reply, at=turn * 10 + 0.1, interrupted=True)
        )
    talked_over = delivery_from_messages(over, roleplay=True)
    assert talked_over.learner_interruptions == 3
    assert [t for t in talked_over.tips if "talked over the other side 3 times" in t]

    hesitant = [
        _in_memory(MessageRole.PERSONA, "Why?", _reply_voice(1000), at=0),
        # reply ends at 0 + 0.6 + 1 = 1.6 s; answer starts at 10 - 0 - 4 = 6 s
        _in_memory(MessageRole.LEARNER, "Because.", {"speech_ms": 4000, "words": 10}, at=10),
    ]
    slow_to_answer = delivery_from_messages(hesitant, roleplay=True)
    assert slow_to_answer.learner_response_median_ms == 4400
    assert [t for t in slow_to_answer.tips if "4.4 seconds to start answering" in t]


@pytest.mark.django_db
def test_the_evaluation_endpoint_shows_delivery_for_voice_sessions_only(api_as, bob, acme):
    scenario = make_scenario(acme)
    voice = _voice_call(bob, scenario)
    text = _session(bob, scenario, channel=Channel.TEXT)
    client = api_as(bob)

    body = client.get(f"/api/v1/sessions/{voice.pk}/evaluation/").json()
    assert body["status"] == "pending"  # grading is untouched: delivery comes without it
    delivery = body["delivery"]
    assert delivery["words_per_minute"] == 150
    assert delivery["talk_share_percent"] == 69.0
    assert delivery["fillers"][0] == {"filler": "like", "count": 2}
    assert delivery["persona_interruptions"] == 0
    assert delivery["learner_response_median_ms"] == 750
    assert len(delivery["tips"]) == 2
    assert client.get(f"/api/v1/sessions/{text.pk}/evaluation/").json()["delivery"] is None


@pytest.mark.django_db
def test_another_organizations_session_is_still_not_found(api_as, bob, mallory, acme):
    session = _voice_call(bob, make_scenario(acme))
    response = api_as(mallory).get(f"/api/v1/sessions/{session.pk}/evaluation/")
    assert response.status_code == 404
    assert "delivery" not in response.content.decode()


@pytest.mark.django_db
def test_the_session_page_has_the_delivery_and_the_partial_renders_it(client, bob, acme):
    session = _voice_call(bob, make_scenario(acme))
    client.force_login(bob)
    response = client.get(reverse("training:session", args=[session.pk]))
    assert response.status_code == 200
    assert response.context["delivery"].words_per_minute == 150

    html = render_to_string("training/delivery.html", {"delivery": response.context["delivery"]})
    assert "How you spoke" in html
    assert '<th scope="row">Speaking rate</th><td>150 words a minute</td>' in html
    assert "“like” × 2" in html
    assert "69%" in html
    assert "<li>You used 7 filler words" in html
    assert render_to_string("training/delivery.html", {"delivery": None}).strip() == ""
