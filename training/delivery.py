"""Delivery: how the learner spoke in a voice session, the figures speech coaches give.

Computed from the session's `Message` rows (one query, or none when the caller passes the
messages it already has), never stored and never part of the grade: the rubric judges what
was said, this reports how. The voice pipeline (voice.pipeline) writes what it uses:

- a learner's voice turn: ``voice = {"speech_ms": ms of speech in the turn, "words": n}``,
  stored when its final transcript is ready (that is its ``created_at``);
- a persona or trainer reply: ``voice = {"audio_ms", "played_ms", "timings_ms": {...},
  "interrupted_by_learner"}``, its row created together with the learner turn it answers
  (so before it was generated), and ``interrupted`` when the learner talked over it.

Figures that cannot be computed (no speech, no timings) are ``None``, never a guess.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from training.models import Channel, Message, ScenarioMode, TrainingSession

# --- thresholds of the tips ----------------------------------------------------------

FAST_WPM = 170  # above: "slow down" (130–160 is a comfortable conversational pace)
SLOW_WPM = 110  # below: "pick up the pace"
TALK_SHARE_MAX_PERCENT = 65  # role-play only: above, the learner is not letting them talk
FILLERS_PER_MINUTE_MAX = 4
MONOLOGUE_MAX_SECONDS = 60
RESPONSE_DELAY_MAX_MS = 3000
INTERRUPTIONS_MAX = 2  # more than this: "let them finish"
# Rate and filler tips need this much speech: a few words say nothing about a pace.
MIN_SPEECH_FOR_PACE_TIPS_MS = 20_000

# --- filler words ----------------------------------------------------------------------
#
# The rule (conservative: a word counts only where it cannot be meant literally):
# - hesitation sounds, as whole words only (never inside a word: "umbrella", "ahead",
#   "errand" and "hummus" are not fillers): um (also umm, uhm), uh (uhh), er, erm, ah,
#   hmm (hm). Hyphenated backchannels such as "uh-huh" and "mm-hm" mean "yes": not counted.
# - "like" followed by a comma ("it was like, slow") or by another "like", except after a
#   subject or auxiliary where it is the verb ("I like, …", "would you like, …");
# - "you know" followed by a comma, or closing a sentence after a comma ("…, you know?"),
#   except after do/did/if/as/what/how… ("do you know, …", "as you know, …");
# - "i mean" followed by a comma ("I mean, we could…"), except after what/do/did/if;
# - "sort of" and "kind of" as hedges, i.e. not after a determiner or question word
#   ("it's kind of slow" counts; "what kind of support", "a sort of plan" do not).

FILLER_SOUNDS: dict[str, str] = {
    "um": "um", "umm": "um", "uhm": "um", "uh": "uh", "uhh": "uh", "er": "er",
    "erm": "erm", "ah": "ah", "hmm": "hmm", "hm": "hmm",
}  # fmt: skip
_LIKE_AS_VERB_AFTER = frozenset(
    "i you we they would i'd you'd we'd they'd do don't does doesn't did didn't".split()
)
_YOU_KNOW_LITERAL_AFTER = frozenset(
    "do did does don't didn't if as what how when who whether".split()
)
_I_MEAN_LITERAL_AFTER = frozenset("what do did if".split())
_HEDGE_LITERAL_AFTER = frozenset(
    "a an the this that these those what which any some every no one each same other "
    "another whatever my your our their his her its all".split()
)
_SENTENCE_END = frozenset(".?!…")
_TOKENS = re.compile(r"[a-z]+(?:['’-][a-z]+)*|[,.;:!?…]")


def count_fillers(text: str) -> Counter[str]:
    """Filler words of one transcript by the module's rule, keyed by their usual spelling
    ("um", "you know", …)."""
    tokens = [t.replace("’", "'") for t in _TOKENS.findall(text.lower())]
    found: Counter[str] = Counter()
    for i, token in enumerate(tokens):
        before = tokens[i - 1] if i > 0 else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        after_next = tokens[i + 2] if i + 2 < len(tokens) else None
        if token in FILLER_SOUNDS:
            found[FILLER_SOUNDS[token]] += 1
        elif token == "like":
            if (after == "," or after == "like") and before not in _LIKE_AS_VERB_AFTER:
                found["like"] += 1
        elif token == "you" and after == "know":
            closes = before == "," and (after_next is None or after_next in _SENTENCE_END)
            if (after_next == "," or closes) and before not in _YOU_KNOW_LITERAL_AFTER:
                found["you know"] += 1
        elif token == "i" and after == "mean":
            if after_next == "," and before not in _I_MEAN_LITERAL_AFTER:
                found["i mean"] += 1
        elif token in ("sort", "kind") and after == "of":
            if before not in _HEDGE_LITERAL_AFTER:
                found[f"{token} of"] += 1
    return found


# --- the figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How the learner spoke in one voice session.

    Times are milliseconds (``*_ms``) or seconds (``*_seconds``); ``None`` where the
    session has nothing to compute the figure from.
    """

    voice_turns: int  # the learner's spoken turns
    words: int
    speech_seconds: float  # the learner's speech, pauses inside a turn excluded
    words_per_minute: int | None  # words over speech time
    filler_count: int
    fillers_per_minute: float | None
    fillers: tuple[tuple[str, int], ...]  # (filler, count), most frequent first
    persona_played_seconds: float  # the replies' audio the learner heard
    talk_share_percent: float | None  # learner speech / (learner speech + replies heard)
    longest_monologue_seconds: float | None  # the learner's longest turn (its speech)
    learner_interruptions: int  # replies the learner talked over
    # The persona talking over the learner: 0 by design in this pipeline. It answers only
    # a finished turn (after the learner's end of turn), and when the learner speaks while
    # a reply is being prepared or played, the reply stops (barge-in) and that counts as
    # the learner's interruption. Reported next to its counterpart; it cannot vary.
    persona_interruptions: int
    persona_response_p50_ms: int | None  # voice to voice: learner stops → reply heard
    persona_response_p95_ms: int | None
    learner_response_median_ms: int | None  # reply heard to its end → learner speaks
    tips: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the API (fillers as a list of {"filler", "count"})."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["fillers"] = [{"filler": word, "count": count} for word, count in self.fillers]
        data["tips"] = list(self.tips)
        return data


def delivery_of(
    session: TrainingSession, messages: Iterable[Message] | None = None
) -> Delivery | None:
    """The delivery figures of a voice session; None for a text session or one without
    voice turns. Reads the session's messages in one query unless `messages` (all of
    them, in order) are given."""
    if session.channel != Channel.VOICE:
        return None
    if messages is None:
        messages = session.messages.order_by("created_at", "id").only(
            "session", "role", "text", "interrupted", "voice", "created_at"
        )
    return delivery_from_messages(list(messages), roleplay=session.mode == ScenarioMode.ROLEPLAY)


def delivery_from_messages(messages: Sequence[Message], *, roleplay: bool) -> Delivery | None:
    """The figures of a voice session's messages, ordered as spoken (pure: no queries)."""
    turns = [m for m in messages if m.is_from_learner and _speech_ms(m) is not None]
    replies = [m for m in messages if not m.is_from_learner and _is_voice_reply(m)]
    if not turns and not replies:
        return None
    speech_ms = sum(_speech_ms(m) or 0.0 for m in turns)
    words = sum(_words(m) for m in turns)
    minutes = speech_ms / 60_000
    fillers: Counter[str] = Counter()
    for turn in turns:
        fillers.update(count_fillers(turn.text))
    filler_count = sum(fillers.values())
    played_ms = sum(_played_ms(m) for m in replies)
    heard_total = speech_ms + played_ms
    voice_to_voice = [
        v for m in replies if (v := _number(_timings(m).get("voice_to_voice"))) is not None
    ]
    learner_delays = _learner_response_delays(messages)
    figures = {
        "voice_turns": len(turns),
        "words": words,
        "speech_seconds": round(speech_ms / 1000, 1),
        "words_per_minute": round(words / minutes) if minutes > 0 else None,
        "filler_count": filler_count,
        "fillers_per_minute": round(filler_count / minutes, 1) if minutes > 0 else None,
        "fillers": tuple(sorted(fillers.items(), key=lambda item: (-item[1], item[0]))),
        "persona_played_seconds": round(played_ms / 1000, 1),
        "talk_share_percent": round(100 * speech_ms / heard_total, 1) if heard_total else None,
        "longest_monologue_seconds": (
            round(max(_speech_ms(m) or 0.0 for m in turns) / 1000, 1) if turns else None
        ),
        "learner_interruptions": sum(1 for m in messages if _talked_over(m)),
        "persona_interruptions": 0,
        "persona_response_p50_ms": _percentile_ms(voice_to_voice, 50),
        "persona_response_p95_ms": _percentile_ms(voice_to_voice, 95),
        "learner_response_median_ms": _percentile_ms(learner_delays, 50),
    }
    tips = _tips(figures, speech_ms=speech_ms, roleplay=roleplay)
    return Delivery(**figures, tips=tips)


# --- response delays -----------------------------------------------------------------


def _learner_response_delays(messages: Sequence[Message]) -> list[float]:
    """For each reply the learner heard to its end and answered by voice: the time from
    the end of its audio to the start of the learner's answer, in ms.

    The reply's audio ends at its ``created_at`` (stored with the learner turn it answers,
    before it was generated) plus its lead-in to the first audio (the
    decision_to_first_token, first_token_to_first_audio and
    first_audio_to_first_frame stages, those recorded) plus ``played_ms``. The answer
    starts at its ``created_at`` (its turn decision) minus the time from the end of
    its speech to that transcript (end_of_speech_to_final_transcript and
    final_transcript_to_decision, recorded on the reply that follows it) minus its
    ``speech_ms``. Replies the learner talked over are left out (they are interruptions,
    not pauses); a negative result, which only measurement error can give after an
    uninterrupted reply, counts as 0; missing figures skip the pair.
    """
    delays = []
    for index, reply in enumerate(messages[:-1]):
        answer = messages[index + 1]
        if reply.is_from_learner or not answer.is_from_learner or _talked_over(reply):
            continue
        speech_ms = _speech_ms(answer)
        if not _is_voice_reply(reply) or speech_ms is None:
            continue
        if reply.created_at is None or answer.created_at is None:
            continue
        timings = _timings(reply)
        lead_in = _sum_of(timings, ("decision_to_first_token",
                                    "first_token_to_first_audio",
                                    "first_audio_to_first_frame"))  # fmt: skip
        reply_ended = _after(reply.created_at, lead_in + _played_ms(reply))
        following = messages[index + 2] if index + 2 < len(messages) else None
        to_transcript = 0.0
        if following is not None and not following.is_from_learner:
            to_transcript = _sum_of(
                _timings(following),
                ("end_of_speech_to_final_transcript", "final_transcript_to_decision"),
            )
        answer_started = _after(answer.created_at, -(to_transcript + speech_ms))
        gap_ms = (answer_started - reply_ended).total_seconds() * 1000
        delays.append(max(0.0, gap_ms))
    return delays


def _percentile_ms(values: Sequence[float], percent: float) -> int | None:
    """Linear interpolation between the closest ranks (NumPy's default): the 50th is the
    median; the 95th of [800, 1000, 1200, 3000] is 2730."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * percent / 100
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value)


# --- tips --------------------------------------------------------------------------------


def _tips(figures: Mapping[str, Any], *, speech_ms: float, roleplay: bool) -> tuple[str, ...]:
    """Plain-language advice for the figures past a threshold (in the order a coach would
    raise them: pace, fillers, talk time, monologues, pauses, interruptions)."""
    tips = []
    enough_speech = speech_ms >= MIN_SPEECH_FOR_PACE_TIPS_MS
    wpm = figures["words_per_minute"]
    if enough_speech and wpm is not None and wpm > FAST_WPM:
        tips.append(
            f"You spoke at about {wpm} words a minute: slow down a little (130–160 is easy "
            "to follow) and pause after your key points."
        )
    elif enough_speech and wpm is not None and wpm < SLOW_WPM:
        tips.append(
            f"You spoke at about {wpm} words a minute: pick up the pace a little to keep "
            "your listener with you."
        )
    per_minute = figures["fillers_per_minute"]
    if enough_speech and per_minute is not None and per_minute > FILLERS_PER_MINUTE_MAX:
        top = figures["fillers"][0][0]
        tips.append(
            f"You used {figures['filler_count']} filler words ({per_minute} a minute), most "
            f"often “{top}”: a short silent pause works better."
        )
    share = figures["talk_share_percent"]
    if roleplay and share is not None and share > TALK_SHARE_MAX_PERCENT:
        tips.append(
            f"You did {round(share)}% of the talking: ask an open question and let the "
            "customer talk."
        )
    longest = figures["longest_monologue_seconds"]
    if longest is not None and longest > MONOLOGUE_MAX_SECONDS:
        tips.append(
            f"Your longest turn ran {round(longest)} seconds: break long explanations up "
            "with a question to check they are still with you."
        )
    delay = figures["learner_response_median_ms"]
    if delay is not None and delay > RESPONSE_DELAY_MAX_MS:
        tips.append(
            f"You usually took {delay / 1000:.1f} seconds to start answering: a short "
            "holding phrase (“Good question…”) buys you thinking time."
        )
    interruptions = figures["learner_interruptions"]
    if interruptions > INTERRUPTIONS_MAX:
        tips.append(
            f"You talked over the other side {interruptions} times: let them finish before "
            "you answer."
        )
    return tuple(tips)


# --- reading the voice figures ------------------------------------------------------------


def _number(value: object) -> float | None:
    """A finite, non-negative number, else None (bools and strings are not figures)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _voice(message: Message) -> Mapping[str, Any]:
    return message.voice if isinstance(message.voice, dict) else {}


def _speech_ms(message: Message) -> float | None:
    return _number(_voice(message).get("speech_ms"))


def _words(message: Message) -> int:
    words = _number(_voice(message).get("words"))
    return int(words) if words is not None else len(message.text.split())


def _is_voice_reply(message: Message) -> bool:
    voice = _voice(message)
    return any(key in voice for key in ("audio_ms", "played_ms", "timings_ms"))


def _played_ms(message: Message) -> float:
    """What the learner heard of a reply (its audio when playback was not reported)."""
    voice = _voice(message)
    played = _number(voice.get("played_ms"))
    if played is None:
        played = _number(voice.get("audio_ms"))
    return played or 0.0


def _timings(message: Message) -> Mapping[str, Any]:
    timings = _voice(message).get("timings_ms")
    return timings if isinstance(timings, dict) else {}


def _sum_of(timings: Mapping[str, Any], stages: Iterable[str]) -> float:
    return sum(_number(timings.get(stage)) or 0.0 for stage in stages)


def _talked_over(message: Message) -> bool:
    return not message.is_from_learner and (
        message.interrupted or _voice(message).get("interrupted_by_learner") is True
    )


def _after(moment: datetime, milliseconds: float) -> datetime:
    return moment + timedelta(milliseconds=milliseconds)
