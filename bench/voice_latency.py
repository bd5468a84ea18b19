"""Voice-to-voice latency of one call at a time, stage by stage.

    .venv/bin/python bench/voice_latency.py [--turns 25] [--modes simulated,offline]

Modes (each: a fresh Daphne from bench/voice_daphne.py on the benchmark servers, one
warm-up turn not counted, then `--turns` turns of one learner talking in a loop):

- `simulated`: providers at published hosted latencies. Speech to text gives partials
  while the learner talks and its final transcript 250 ms after the end of speech
  (bench/voice_fakes.py); the model is the real `openai` client path (LLM_PROVIDER=openai)
  against a local OpenAI-compatible server streaming chat completions over SSE, first
  token 300 ms after the request, then 40 tokens a second; text to speech gives a
  clause's first audio 120 ms after it is asked for. Target p95 < 650 ms.
- `simulated-commit`: the same, with the final transcript 250 ms after the pipeline
  commits the segment (its VAD pause) instead of after the end of speech: what a
  commit-based hosted recogniser would do.
- `simulated-pause128`: `simulated` with the draft pause at 128 ms (VOICE_DRAFT_PAUSE_MS,
  the default before 96 ms).
- `simulated-baseline`: `simulated` with no draft on partial text
  (VOICE_DRAFT_PAUSE_MS=0): the reply is drafted at the final transcript, as before.
- `offline`: no fakes: faster-whisper tiny.en, Piper, the offline stand-in persona (its
  default 20 ms a token), Silero VAD and smart-turn. Target p95 < 1.5 s on 2 idle cores.

voice_to_voice is the server's `turn.metrics` figure (end of speech by its VAD → first
reply frame sent); the client's own (the same end of speech, as sent → first reply
frame received) is printed beside it. The load average is printed at the start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench_setup import free_port, pct

os.environ["MESSAGE_RATE_PER_MINUTE"] = "100000"

REPLIES = [
    "Fair enough, but your price is still thirty percent higher than what we pay today. "
    "Tell me what we would get for the extra money.",
    "I hear you, and I appreciate the offer. Still, our finance team wants a shorter "
    "contract, because nobody knows next year's budget.",
    "Maybe so, but the last outage took your team two days to fix. Why would it be "
    "different this time?",
]


class ChatCompletions(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions` with `stream: true`, as OpenAI streams it (SSE)."""

    protocol_version = "HTTP/1.1"
    first_token_s = 0.3
    tokens_per_s = 40.0
    count = 0

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        received = time.monotonic()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        assert body.get("stream"), body
        ChatCompletions.count += 1
        text = REPLIES[ChatCompletions.count % len(REPLIES)]
        tokens = re.findall(r"\s*[\w']+|\s*[^\w\s]", text)  # words and punctuation
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                "model": body.get("model", "bench")}  # fmt: skip
        for index, token in enumerate(tokens):
            due = received + self.first_token_s + index / self.tokens_per_s
            time.sleep(max(0.0, due - time.monotonic()))
            delta = {"content": token, **({"role": "assistant"} if index == 0 else {})}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            self._chunk(b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n")
        stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
        self._chunk(b"data: " + json.dumps({**base, "choices": [stop]}).encode() + b"\n\n")
        usage = {"prompt_tokens": 500, "completion_tokens": len(tokens), "total_tokens": 500}
        self._chunk(
            b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n"
        )
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


def summary(values: list[float]) -> str:
    if not values:
        return "- | -"
    return f"{statistics.median(values):.0f} | {pct(values, 0.95):.0f}"


def run_mode(mode: str, turns: int, scenario_id: int, user, utterances) -> dict:
    import voice_client

    env: dict[str, str] = {}
    server = None
    if mode.startswith("simulated"):
        server = ThreadingHTTPServer(("127.0.0.1", free_port()), ChatCompletions)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = {
            "LLM_PROVIDER": "openai", "LLM_API_KEY": "x", "LLM_MAX_RETRIES": "0",
            "LLM_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}/v1",
            "BENCH_STT_FINAL_MS": "250", "BENCH_TTS_FIRST_AUDIO_MS": "120",
            "BENCH_STT_FROM": "commit" if mode == "simulated-commit" else "speech_end",
        }  # fmt: skip
        if mode == "simulated-baseline":
            env["VOICE_DRAFT_PAUSE_MS"] = "0"  # the draft waits for the final transcript
        if mode == "simulated-pause128":
            env["VOICE_DRAFT_PAUSE_MS"] = "128"  # the default until 2026-12-07
        providers = "simulated"
    elif mode == "offline":
        env = {"LLM_PROVIDER": "offline"}
        providers = "real"
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    load_start = os.getloadavg()
    daphne = voice_client.Daphne(providers, **env)
    try:
        warm = voice_client.Call("warm-up", daphne.url, user, scenario_id, utterances, seed=99)
        asyncio.run(warm.run(time.monotonic() + 120, turns=1))
        call = voice_client.Call(mode, daphne.url, user, scenario_id, utterances, seed=7,
                                 pause=(0.8, 1.5))  # fmt: skip
        before = daphne.drafts()
        asyncio.run(call.run(time.monotonic() + turns * 40, turns=turns))
        drafts = {k: v - before.get(k, 0) for k, v in daphne.drafts().items()}
    finally:
        daphne.stop()
        if server is not None:
            server.shutdown()
    load_end = os.getloadavg()
    return {"call": call, "load": (load_start, load_end), "warm": warm, "drafts": drafts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=25)
    parser.add_argument("--modes", default="simulated,offline")
    args = parser.parse_args()
    import voice_client

    voice_client.setup()
    scenario_id, users = voice_client.learners("bench-voice-latency", 1)
    utterances = voice_client.speech()
    targets = {"simulated": 650, "simulated-baseline": 650, "simulated-commit": 650,
               "simulated-pause128": 650, "offline": 1500}  # fmt: skip
    from django.conf import settings

    print(f"cores {os.cpu_count()}; {args.turns} turns a mode after one warm-up turn; code "
          f"{voice_client.code_version()}; VAD stop {settings.VOICE_VAD_STOP_MS} ms, confirm "
          f"silence {settings.VOICE_CONFIRM_SILENCE_MS} ms", flush=True)  # fmt: skip
    results = {}
    try:
        for mode in args.modes.split(","):
            result = run_mode(mode, args.turns, scenario_id, users[0], utterances)
            results[mode] = result
            call = result["call"]
            (l1, l5, _), (e1, e5, _) = result["load"]
            metrics = call.metrics
            print(f"\n{mode}: {len(metrics)} turns ({call.turns_without_reply} without a reply), "
                  f"errors {call.errors or 'none'}; load average (1/5 min) {l1:.2f}/{l5:.2f} at "
                  f"start, {e1:.2f}/{e5:.2f} at end")  # fmt: skip
            v2v = [m["voice_to_voice"] for m in metrics if "voice_to_voice" in m]
            raw = voice_client.BASE_DIR / "var" / "bench" / f"voice_latency_{mode}.json"
            raw.write_text(json.dumps({"metrics": metrics, "client_v2v_ms": call.client_v2v_ms}))
            mean = statistics.mean(v2v) if v2v else 1
            print("| stage | p50 ms | p95 ms | share of the mean |")
            print("| --- | --- | --- | --- |")
            for stage in voice_client.STAGES:
                values = [m[stage] for m in metrics if stage in m]
                share = statistics.mean(values) / mean * 100 if values else 0
                print(f"| {stage} | {summary(values)} | {share:.0f} % |")
            model = [m["bench_end_of_turn_model_ms"] for m in metrics
                     if "bench_end_of_turn_model_ms" in m]  # fmt: skip
            print(f"| (end-of-turn model inference, inside the decision) | {summary(model)} | |")
            for step in voice_client.STEPS:
                values = [m[f"bench_{step}_ms"] for m in metrics if f"bench_{step}_ms" in m]
                print(f"| (step {step}) | {summary(values)} | |")
            fallbacks = sum(1 for m in metrics if m.get("bench_end_of_turn_probability", 1) < 0.5)
            print(f"| client: end of speech (VAD) sent -> first reply frame received | "
                  f"{summary(call.client_v2v_ms)} | |")  # fmt: skip
            hidden = [client - server for _, client, server in call.timeline]
            print(f"| client minus server voice_to_voice, same turn | {summary(hidden)} | |")
            print(f"| ping -> pong through the call's socket | {summary(call.pings_ms)} | |")
            gaps = sum(len(r.gaps_ms) for r in call.replies)
            dry = sum(r.underruns for r in call.replies)
            print(f"turns that waited for the silence fallback: {fallbacks}; reply audio gaps "
                  f"> 120 ms: {gaps}, player ran dry: {dry}")  # fmt: skip
            drafts = result["drafts"]
            print(f"replies drafted: {drafts.get('used', 0)} used, {drafts.get('discarded', 0)} "
                  f"thrown away (the learner went on)")  # fmt: skip
            p95 = pct(v2v, 0.95) if v2v else float("nan")
            target = targets[mode]
            print(f"target voice_to_voice p95 < {target} ms: {p95:.0f} ms -> "
                  f"{'met' if p95 < target else 'MISSED'}", flush=True)  # fmt: skip
    finally:
        voice_client.end_sessions(users)


if __name__ == "__main__":
    main()
