"""Chat completions for the OpenAI wire server: whole answers and SSE streams."""

import json
from dataclasses import dataclass

from knowledge.tests.openai_wire import OpenAIWireServer, RecordedRequest, Response


@dataclass(frozen=True)
class BreakMidway:
    """Stop the stream halfway with an error inside the HTTP 200 (as OpenRouter does)."""


@dataclass(frozen=True)
class EndWithout:
    """End the stream without a finish_reason: after `tokens` words, `ending` is
    "done" (then [DONE]), "close" (the connection just closes) or "cut" (half a chunk)."""

    ending: str
    tokens: int = 3


@dataclass(frozen=True)
class EmptyChoices:
    """Stream chunks whose `choices` are empty, then [DONE]: no text, no finish_reason."""


@dataclass(frozen=True)
class Reply:
    """Answer with this text."""

    text: str


def _chunk(model, content=None, finish=None, usage=None, choices=True):
    payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
               "model": model, "choices": []}  # fmt: skip
    if choices:
        delta = {"content": content} if content else {}
        payload["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage:
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n".encode()


def add_chat(server: OpenAIWireServer, reply: str = "Hello from the wire server.", delay=0.0):
    """Route /v1/chat/completions on `server`; returns a dict whose "reply" tests may change."""
    state = {"reply": reply, "delay": delay}

    def handler(request: RecordedRequest, behaviour) -> Response:
        body = request.body
        text = behaviour.text if isinstance(behaviour, Reply) else state["reply"]
        words = text.split(" ")
        usage = {"prompt_tokens": 11, "completion_tokens": len(words),
                 "total_tokens": 11 + len(words)}  # fmt: skip
        if not body.get("stream"):
            return Response(200, {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": usage,
            })  # fmt: skip
        chunks = []
        if isinstance(behaviour, EmptyChoices):
            chunks = [(_chunk(body["model"], choices=False), 0.0)] * 3
            chunks.append((b"data: [DONE]\n\n", 0.0))
            return Response(200, headers={"Content-Type": "text/event-stream"}, chunks=chunks)
        for index, word in enumerate(words):
            if isinstance(behaviour, EndWithout) and index == behaviour.tokens:
                if behaviour.ending == "cut":
                    chunks.append((_chunk(body["model"], word)[:30], 0.0))
                elif behaviour.ending == "done":
                    chunks.append((b"data: [DONE]\n\n", 0.0))
                return Response(200, headers={"Content-Type": "text/event-stream"}, chunks=chunks)
            if isinstance(behaviour, BreakMidway) and index == len(words) // 2:
                error = {"error": {"code": 502, "message": "upstream provider died"}}
                chunks.append((f"data: {json.dumps(error)}\n\n".encode(), 0.0))
                return Response(200, headers={"Content-Type": "text/event-stream"}, chunks=chunks)
            piece = word + (" " if index < len(words) - 1 else "")
            chunks.append((_chunk(body["model"], piece), state["delay"]))
        chunks.append((_chunk(body["model"], finish="stop"), 0.0))
        chunks.append((_chunk(body["model"], usage=usage, choices=False), 0.0))
        chunks.append((b"data: [DONE]\n\n", 0.0))
        return Response(200, headers={"Content-Type": "text/event-stream"}, chunks=chunks)

    server.route("/v1/chat/completions", handler)
    return state
