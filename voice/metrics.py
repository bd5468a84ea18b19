"""Prometheus metrics of voice turns (exported at /metrics with the rest)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_BUCKETS = (
    0.025,
    0.05,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.65,
    0.8,
    1.0,
    1.25,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
)

TURN_STAGE = Histogram(
    "voice_turn_stage_seconds",
    "Time of each stage of a voice turn, from the end of the learner's speech to the first "
    "audio frame of the reply sent (stage voice_to_voice is the whole).",
    ["stage"],
    buckets=_BUCKETS,
)
BARGE_IN = Histogram(
    "voice_barge_in_stop_seconds",
    "From deciding that the learner is talking over a reply to its audio stopped and the "
    "client told to flush.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
DRAFTS = Counter(
    "voice_draft_replies_total",
    "Replies drafted at a probable end of turn: used (the turn was confirmed) or discarded "
    "(the learner went on).",
    ["outcome"],
)
CALLS = Gauge("voice_calls_open", "Voice calls open in this process.")
PROVIDER_ERRORS = Counter(
    "voice_provider_errors_total", "Speech provider failures seen by calls.", ["kind"]
)


def observe_turn(timings_ms: dict[str, int]) -> None:
    for stage, milliseconds in timings_ms.items():
        TURN_STAGE.labels(stage=stage).observe(milliseconds / 1000)
