"""The hosted speech clients against local servers that speak the providers' protocols.

The real clients (websockets, httpx, the `elevenlabs` SDK) are pointed at the stubs by
base URL; nothing in them is patched.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from voice.errors import SpeechProviderError
from voice.stt import get_speech_to_text
from voice.stt.openai import HttpTranscription, RealtimeTranscription, _Resampler
from voice.tests.speech_servers import (
    ELEVENLABS_KEY,
    INSUFFICIENT_QUOTA,
    OPENAI_KEY,
    QUOTA_DETAIL,
    RATE_LIMITED,
    ElevenLabsStub,
    HttpResponse,
    OpenAIStub,
    phrase_for,
    run_bounded,
    running,
    sample_for,
    samples_of,
)
from voice.tts import elevenlabs as elevenlabs_module
from voice.tts import get_text_to_speech
from voice.tts.elevenlabs import ElevenLabsSpeech

STT_MODEL = "gpt-live-transcribe"
TTS_MODEL = "eleven_flash_v2_5"
VOICE = "21m00Tcm4TlvDq8ikWAM"


run = run_bounded


@pytest.fixture(autouse=True)
def _voice_settings(settings):
    settings.VOICE_STT_MODEL = STT_MODEL
    settings.VOICE_TTS_MODEL = TTS_MODEL
    settings.VOICE_STT_TIMEOUT_SECONDS = 5.0
    settings.VOICE_TTS_TIMEOUT_SECONDS = 5.0
    return settings


def speech(seconds: float) -> list[bytes]:
    """`seconds` of a 220 Hz tone as 16 kHz PCM in 20 ms frames."""
    frames = []
    for start in range(0, round(seconds * 16000), 320):
        samples = [
            round(8000 * math.sin(2 * math.pi * 220 * (start + i) / 16000)) for i in range(320)
        ]
        frames.append(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
    return frames


async def say(stream, seconds: float) -> str:
    for frame in speech(seconds):
        await stream.send_audio(frame)
    return await stream.finish_segment()


# --- Speech-to-text: the Realtime socket ------------------------------------------------


def test_segment_streams_partials_then_its_final_text():
    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL)) as server:
            partials = []

            async def on_partial(text):
                partials.append(text)

            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open(on_partial)
            text = await say(stream, 1.0)
            await stream.close()
            return server, stream, partials, text

    server, stream, partials, text = run(scenario())
    assert text == phrase_for(1.0) == "you spoke for 1.0 seconds"
    # Growing text of the segment, delta by delta, before the final text.
    assert partials == ["you", "you spoke", "you spoke for", "you spoke for 1.0", text]
    assert server.problems == []
    assert server.client_events[0] == "session.update"
    assert server.client_events[-1] == "input_audio_buffer.commit"
    # 1 s at 16 kHz became 1 s at 24 kHz (base64 PCM16 appends, one per frame).
    assert len(server.appended_bytes) == 50
    assert abs(server.committed_bytes[0] - 48000) <= 4
    assert stream.transport == "websocket"
    headers = server.ws_headers[0]
    assert headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert "OpenAI-Beta" not in headers
    assert server.http_requests == []


def test_two_segments_of_a_call_share_one_connection():
    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL)) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            first = await say(stream, 0.5)
            second = await say(stream, 1.5)
            await stream.close()
            return server, first, second

    server, first, second = run(scenario())
    assert (first, second) == (phrase_for(0.5), phrase_for(1.5))
    assert server.ws_connections == 1
    assert server.client_events.count("input_audio_buffer.commit") == 2
    assert server.client_events.count("session.update") == 1
    assert server.problems == []


def test_an_empty_segment_is_not_committed():
    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL)) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            empty = await stream.finish_segment()
            blip = await say(stream, 0.04)  # under the 100 ms the service will commit
            real = await say(stream, 0.5)
            await stream.close()
            return server, empty, blip, real

    server, empty, blip, real = run(scenario())
    assert (empty, blip) == ("", "")
    assert real == phrase_for(0.5)  # the blip was cleared, not prepended
    assert server.client_events.count("input_audio_buffer.commit") == 1
    assert server.client_events.count("input_audio_buffer.clear") == 1
    assert server.problems == []


def test_a_rejected_key_is_a_readable_final_error():
    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL)) as server:
            stt = RealtimeTranscription(api_key="sk-wrong", base_url=server.base_url)
            with pytest.raises(SpeechProviderError) as raised:
                await stt.open()
            return server, raised.value

    server, error = run(scenario())
    assert "rejected its API key" in str(error)
    assert error.retryable is False
    assert server.http_requests == []  # a bad key is not tried again over HTTP


def test_stt_quota_on_the_socket_is_final_and_not_retried_over_http():
    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL, quota_on_session=True)) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            with pytest.raises(SpeechProviderError) as raised:
                await stt.open()
            return server, raised.value

    server, error = run(scenario())
    assert "quota" in str(error)
    assert "billing" in str(error)
    assert error.retryable is False
    assert server.http_requests == []


def test_a_429_handshake_with_insufficient_quota_is_final():
    async def scenario():
        stub = OpenAIStub(model=STT_MODEL, reject_websocket=(429, INSUFFICIENT_QUOTA))
        async with running(stub) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            with pytest.raises(SpeechProviderError) as raised:
                await stt.open()
            return server, raised.value

    server, error = run(scenario())
    assert "quota" in str(error)
    assert error.retryable is False
    assert server.http_requests == []


def test_a_silent_service_times_out_within_the_configured_time(settings):
    settings.VOICE_STT_TIMEOUT_SECONDS = 1.0

    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL, silent=True)) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            for frame in speech(0.3):
                await stream.send_audio(frame)
            started = time.monotonic()
            with pytest.raises(SpeechProviderError) as raised:
                await stream.finish_segment()
            elapsed = time.monotonic() - started
            await stream.close()
            return raised.value, elapsed

    error, elapsed = run(scenario())
    assert "took too long" in str(error)
    assert error.retryable is True
    assert 0.9 <= elapsed < 1.8


def test_a_dropped_socket_hands_the_call_over_to_http():
    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL, drop_after_appends=10)) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            first = await say(stream, 1.0)  # the socket drops 0.2 s in
            second = await say(stream, 0.5)
            transport = stream.transport
            await stream.close()
            return server, first, second, transport

    server, first, second, transport = run(scenario())
    # The whole of the cut-off segment arrived over HTTP, and so did the next one.
    assert (first, second) == (phrase_for(1.0), phrase_for(0.5))
    assert transport == "http"
    assert server.ws_connections == 1
    assert len(server.http_requests) == 2
    assert server.problems == []


def test_a_socket_dropped_while_a_transcript_is_awaited_falls_back_for_that_segment():
    async def scenario():
        # 50 appends then the commit: the drop comes on the 50th, before the commit lands.
        async with running(OpenAIStub(model=STT_MODEL, drop_after_appends=50)) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            text = await say(stream, 1.0)
            await stream.close()
            return server, text

    server, text = run(scenario())
    assert text == phrase_for(1.0)
    assert len(server.http_requests) == 1


def test_a_socket_that_cannot_open_falls_back_to_http_at_once():
    async def scenario():
        error = {"error": {"message": "upstream unavailable", "type": "server_error"}}
        async with running(OpenAIStub(model=STT_MODEL, reject_websocket=(503, error))) as server:
            stt = RealtimeTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            text = await say(stream, 0.5)
            transport = stream.transport
            await stream.close()
            return server, text, transport

    server, text, transport = run(scenario())
    assert text == phrase_for(0.5)
    assert transport == "http"
    assert server.problems == []


# --- Speech-to-text: HTTP ---------------------------------------------------------------


def test_http_transcription_posts_each_segment_as_wav():
    async def scenario():
        async with running(OpenAIStub(model=STT_MODEL)) as server:
            stt = HttpTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            empty = await stream.finish_segment()
            text = await say(stream, 0.7)
            await stream.close()
            return server, empty, text

    server, empty, text = run(scenario())
    assert (empty, text) == ("", phrase_for(0.7))
    assert len(server.http_requests) == 1
    assert server.problems == []


@pytest.mark.parametrize(
    ("status", "payload", "words"),
    [
        (
            401,
            {
                "error": {
                    "message": "bad key",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            "rejected its API key",
        ),
        (429, INSUFFICIENT_QUOTA, "quota"),
    ],
)
def test_http_key_and_quota_errors_are_final_and_not_retried(status, payload, words):
    async def scenario():
        refusal = HttpResponse.json(status, payload)
        async with running(OpenAIStub(model=STT_MODEL, http_responses=[refusal])) as server:
            stt = HttpTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            with pytest.raises(SpeechProviderError) as raised:
                await say(stream, 0.5)
            await stream.close()
            return server, raised.value

    server, error = run(scenario())
    assert words in str(error)
    assert error.retryable is False
    assert len(server.http_requests) == 1


def test_http_rate_limit_is_retried_once_after_retry_after():
    async def scenario():
        busy = HttpResponse.json(429, RATE_LIMITED, **{"Retry-After": "0.2"})
        async with running(OpenAIStub(model=STT_MODEL, http_responses=[busy])) as server:
            stt = HttpTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            started = time.monotonic()
            text = await say(stream, 0.5)
            elapsed = time.monotonic() - started
            await stream.close()
            return server, text, elapsed

    server, text, elapsed = run(scenario())
    assert text == phrase_for(0.5)
    assert len(server.http_requests) == 2
    assert elapsed >= 0.2


def test_http_that_never_answers_times_out(settings):
    settings.VOICE_STT_TIMEOUT_SECONDS = 1.0

    async def scenario():
        stub = OpenAIStub(model=STT_MODEL, http_responses=[HttpResponse(hang=True)])
        async with running(stub) as server:
            stt = HttpTranscription(api_key=OPENAI_KEY, base_url=server.base_url)
            stream = await stt.open()
            started = time.monotonic()
            with pytest.raises(SpeechProviderError) as raised:
                await say(stream, 0.5)
            elapsed = time.monotonic() - started
            await stream.close()
            return raised.value, elapsed

    error, elapsed = run(scenario())
    assert "took too long" in str(error)
    assert error.retryable is True
    assert elapsed < 1.8


def test_resampling_is_continuous_across_frames():
    whole = b"".join(speech(0.1))
    resampler = _Resampler(16000, 24000)
    pieces = b"".join(
        resampler.process(frame[:301]) + resampler.process(frame[301:]) for frame in speech(0.1)
    )
    one_go = _Resampler(16000, 24000).process(whole)
    assert pieces == one_go
    assert abs(len(one_go) - len(whole) * 3 // 2) <= 2


# --- Text-to-speech: ElevenLabs ---------------------------------------------------------


async def collect(synthesis, text):
    return [chunk async for chunk in synthesis.synthesize(text)]


def test_two_clauses_share_one_warm_connection():
    async def scenario():
        async with running(ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE)) as server:
            tts = ElevenLabsSpeech(api_key=ELEVENLABS_KEY, base_url=server.base_url)
            synthesis = await tts.open(VOICE)
            first = await collect(synthesis, "Hello there.")
            second = await collect(synthesis, "How are you today?")
            await synthesis.close()
            return server, first, second

    server, first, second = run(scenario())
    assert server.ws_connections == 1
    assert samples_of(b"".join(first)) == {sample_for("Hello there.")}
    assert samples_of(b"".join(second)) == {sample_for("How are you today?")}
    assert len(b"".join(first)) == 3 * 960
    assert server.problems == []
    # Each clause: its own context, opened with voice settings, flushed, then closed.
    contexts = list(server.contexts)
    assert len(contexts) == 2
    for context_id in contexts:
        sent = [m for m in server.messages if m.get("context_id") == context_id]
        assert sent[0]["text"] == " "
        assert "voice_settings" in sent[0]
        assert sent[1]["flush"] is True
        assert sent[1]["text"].strip()
        assert sent[2] == {"context_id": context_id, "close_context": True}
    assert server.messages[-1] == {"close_socket": True}
    assert server.ws_headers[0]["xi-api-key"] == ELEVENLABS_KEY
    assert "auto_mode=true" in server.ws_paths[0]


def test_an_abandoned_clause_is_closed_and_its_late_audio_dropped():
    async def scenario():
        stub = ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE, chunk_count=6, chunk_delay=0.04)
        async with running(stub) as server:
            tts = ElevenLabsSpeech(api_key=ELEVENLABS_KEY, base_url=server.base_url)
            synthesis = await tts.open(VOICE)
            clause = synthesis.synthesize("This reply gets interrupted.")
            heard = await anext(clause)
            await clause.aclose()  # barge-in
            second = await collect(synthesis, "Go on.")
            await asyncio.sleep(0.1)
            await synthesis.close()
            return server, heard, second

    server, heard, second = run(scenario())
    assert samples_of(heard) == {sample_for("This reply gets interrupted.")}
    first_id, _second_id = list(server.contexts)
    assert {"context_id": first_id, "close_context": True} in server.messages
    # The server went on to send all of the first clause while the second was spoken…
    assert server.contexts[first_id].audio_sent == 6
    # …and none of it reached the second clause.
    assert samples_of(b"".join(second)) == {sample_for("Go on.")}
    assert len(b"".join(second)) == 6 * 960
    assert server.problems == []


def test_tts_quota_on_the_socket_is_final_and_not_retried_over_http():
    async def scenario():
        stub = ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE, quota_on_text=True)
        async with running(stub) as server:
            tts = ElevenLabsSpeech(api_key=ELEVENLABS_KEY, base_url=server.base_url)
            synthesis = await tts.open(VOICE)
            with pytest.raises(SpeechProviderError) as first:
                await collect(synthesis, "Hello.")
            with pytest.raises(SpeechProviderError) as second:
                await collect(synthesis, "Anyone there?")
            await synthesis.close()
            return server, first.value, second.value

    server, first, second = run(scenario())
    assert "quota" in str(first)
    assert first.retryable is False
    assert str(second) == str(first)
    assert server.http_requests == []


def test_a_rejected_key_fails_opening():
    async def scenario():
        async with running(ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE)) as server:
            tts = ElevenLabsSpeech(api_key="xi-wrong", base_url=server.base_url)
            with pytest.raises(SpeechProviderError) as raised:
                await tts.open(VOICE)
            return server, raised.value

    server, error = run(scenario())
    assert "rejected its API key" in str(error)
    assert error.retryable is False
    assert server.http_requests == []


def test_a_failed_socket_hands_the_call_over_to_the_http_stream():
    async def scenario():
        stub = ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE, drop_on_text=True)
        async with running(stub) as server:
            tts = ElevenLabsSpeech(api_key=ELEVENLABS_KEY, base_url=server.base_url)
            synthesis = await tts.open(VOICE)
            first = await collect(synthesis, "Hello there.")
            second = await collect(synthesis, "Still here.")
            transport = synthesis.transport
            await synthesis.close()
            return server, first, second, transport

    server, first, second, transport = run(scenario())
    assert transport == "http"
    assert server.ws_connections == 1
    assert samples_of(b"".join(first)) == {sample_for("Hello there.")}
    assert samples_of(b"".join(second)) == {sample_for("Still here.")}
    # Whole samples only, although the server split the stream mid-sample.
    assert all(len(chunk) % 2 == 0 for chunk in first)
    assert len(b"".join(first)) == 3 * 960
    assert len(server.http_requests) == 2
    request = server.http_requests[0]
    assert request.headers["xi-api-key"] == ELEVENLABS_KEY
    assert request.json() == {"text": "Hello there.", "model_id": TTS_MODEL}
    assert server.problems == []


def test_http_stream_quota_is_final():
    async def scenario():
        stub = ElevenLabsStub(
            model=TTS_MODEL,
            voice_id=VOICE,
            reject_websocket=(503, {"detail": "unavailable"}),
            http_responses=[HttpResponse.json(401, QUOTA_DETAIL)],
        )
        async with running(stub) as server:
            tts = ElevenLabsSpeech(api_key=ELEVENLABS_KEY, base_url=server.base_url)
            synthesis = await tts.open(VOICE)  # the socket is refused: HTTP from the start
            with pytest.raises(SpeechProviderError) as first:
                await collect(synthesis, "Hello.")
            with pytest.raises(SpeechProviderError) as second:
                await collect(synthesis, "Hello again.")
            await synthesis.close()
            return server, first.value, second.value

    server, first, second = run(scenario())
    assert "quota" in str(first)
    assert first.retryable is False
    assert second.retryable is False
    assert len(server.http_requests) == 1  # not retried, and not tried again


def test_a_silent_socket_times_out_within_the_configured_time(settings):
    settings.VOICE_TTS_TIMEOUT_SECONDS = 1.0

    async def scenario():
        stub = ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE, silent=True)
        async with running(stub) as server:
            tts = ElevenLabsSpeech(api_key=ELEVENLABS_KEY, base_url=server.base_url)
            synthesis = await tts.open(VOICE)
            started = time.monotonic()
            with pytest.raises(SpeechProviderError) as raised:
                await collect(synthesis, "Hello.")
            elapsed = time.monotonic() - started
            await synthesis.close()
            return raised.value, elapsed

    error, elapsed = run(scenario())
    assert "took too long" in str(error)
    assert error.retryable is True
    assert 0.9 <= elapsed < 1.8


def test_an_idle_socket_is_kept_alive(monkeypatch):
    monkeypatch.setattr(elevenlabs_module, "KEEPALIVE_SECONDS", 0.1)

    async def scenario():
        async with running(ElevenLabsStub(model=TTS_MODEL, voice_id=VOICE)) as server:
            tts = ElevenLabsSpeech(api_key=ELEVENLABS_KEY, base_url=server.base_url)
            synthesis = await tts.open(VOICE)
            await asyncio.sleep(0.45)
            await synthesis.close()
            return server

    server = run(scenario())
    assert len(server.keepalives) >= 3
    assert all(message == {"text": ""} for message in server.keepalives)


def test_voices_are_premade_ids():
    voices = ElevenLabsSpeech(api_key="", base_url="https://api.elevenlabs.io").voices()
    ids = {voice.id for voice in voices}
    assert {"21m00Tcm4TlvDq8ikWAM", "pNInz6obpgDQGcFmaJgB"} <= ids
    assert all(voice.label for voice in voices)


# --- The factories ----------------------------------------------------------------------


def test_factories_choose_the_hosted_clients_from_settings(settings):
    settings.VOICE_STT_PROVIDER = "openai-realtime"
    settings.VOICE_STT_API_KEY = OPENAI_KEY
    settings.VOICE_TTS_PROVIDER = "elevenlabs"
    stt = get_speech_to_text(None)
    assert isinstance(stt, RealtimeTranscription)
    assert stt.model_id == STT_MODEL
    settings.VOICE_STT_PROVIDER = "openai-http"
    assert isinstance(get_speech_to_text(None), HttpTranscription)
    tts = get_text_to_speech(None)
    assert isinstance(tts, ElevenLabsSpeech)
    assert tts.model_id == TTS_MODEL
