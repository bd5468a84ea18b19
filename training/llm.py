"""Chat-model providers: a hosted OpenAI-compatible client and an honest offline stand-in.

- `OpenAIChatModel` talks to OpenRouter, OpenAI or any OpenAI-compatible server (Ollama,
  llama.cpp's server, vLLM) through the `openai` SDK: streaming, explicit timeouts,
  retries on 429/5xx that honour `Retry-After` before any token has streamed (never
  after; core.provider_http.RetryPolicy), a circuit breaker shared through Redis, token
  and cost accounting.
- `OfflineStandIn` is the default with no key. Small local models that ship in pip
  packages were measured unable to play a persona or answer from documents (see
  ../shared/OFFLINE.md and the issue note), so the stand-in does not pretend to be an
  LLM: it plays the scenario's own authored opening line and objections, answers training
  questions by quoting the retrieved passages with their citation numbers, and says so
  on the page. It streams its words like the hosted model does.

`get_chat_model()` chooses from settings; nothing else knows which is in use.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings

from accounts import credentials
from accounts.models import ProviderService
from core.breaker import CircuitBreaker
from core.provider_http import (
    RetryPolicy,
    acall_with_retries,
    call_with_retries,
    is_quota_exhausted,
    sdk_async_http_client,
    sdk_http_client,
)
from knowledge.tokens import count_tokens

STAND_IN_MODEL_ID = "offline-stand-in"
END_MARKER = "[END_CONVERSATION]"
OUT_OF_CREDIT = (
    "The AI provider account has run out of credit; tell your administrator to add credit "
    "or change the plan."
)
CUT_OFF = "The AI service's reply was cut off before it finished."
UNREADABLE = "The AI service sent an answer we could not read."


class LLMError(Exception):
    """The model failed; str(exc) is a sentence a learner can read."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class LLMUnavailable(LLMError):
    """The circuit breaker is open: recent calls failed, so we fail fast for a while."""


@dataclass
class Passage:
    number: int
    title: str
    page: int | None
    heading: str
    text: str


@dataclass
class ConversationContext:
    """What the offline stand-in reads instead of the prompt text."""

    mode: str
    persona_name: str = ""
    opening_line: str = ""
    objections: list[str] = field(default_factory=list)
    persona_turns_so_far: int = 0
    learner_text: str = ""
    passages: list[Passage] = field(default_factory=list)


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    context: ConversationContext
    max_tokens: int = 400
    temperature: float = 0.7


@dataclass
class TextDelta:
    text: str


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


class ChatModel(Protocol):
    model_id: str
    is_stand_in: bool

    def astream(self, prompt: Prompt) -> AsyncIterator[TextDelta | Usage]:
        """Yield text deltas as they come, then one Usage. Raises LLMError. Closing the
        iterator early stops the call (the provider stops generating)."""
        ...

    def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, json: bool = False
    ) -> str:
        """One whole answer (no streaming). Raises LLMError."""
        ...

    def cost(self, usage: Usage) -> Decimal | None:
        """Price of a call in US dollars, when known."""
        ...


# --- hosted ---------------------------------------------------------------------------


class OpenAIChatModel:
    is_stand_in = False

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float = 30.0,
        max_retries: int = 5,
        app_url: str = "",
        app_name: str = "AvatarAdam",
        price_prompt_per_mtok: float | None = None,
        price_completion_per_mtok: float | None = None,
        breaker_scope: str = "",
    ) -> None:
        import openai

        self.model = model
        self.model_id = model
        headers = {"X-Title": app_name}
        if app_url:
            headers["HTTP-Referer"] = app_url
        self._options: dict[str, Any] = {
            "base_url": base_url,
            "api_key": api_key or "missing",
            "timeout": timeout,
            "max_retries": 0,  # retried by self.retry_policy, the same for every provider
            "default_headers": headers,
        }
        self.retry_policy = RetryPolicy(retries=max_retries)
        self._client = openai.OpenAI(**self._options, http_client=sdk_http_client())
        # An async client's connection pool belongs to one event loop: one client per loop.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, openai.AsyncOpenAI
        ] = weakref.WeakKeyDictionary()
        # An organization's own key gets its own circuit: its failures pause only it.
        name = f"{breaker_scope}-{base_url}-{model}" if breaker_scope else f"{base_url}-{model}"
        self.breaker = CircuitBreaker("llm-" + re.sub(r"[^a-z0-9]+", "-", name.lower()))
        self.prices = (price_prompt_per_mtok, price_completion_per_mtok)

    def _check_breaker(self) -> None:
        if self.breaker.is_open():
            raise LLMUnavailable(
                "The AI service is failing right now, so we paused calls to it for a moment. "
                "Please try again in half a minute."
            )

    def _error(self, exc: Exception) -> LLMError:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return LLMError("The AI service took too long to answer.", retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            return LLMError("The AI service could not be reached.", retryable=True)
        if isinstance(exc, openai.APIStatusError) and (
            exc.status_code == 402 or is_quota_exhausted(exc.body)
        ):
            return LLMError(OUT_OF_CREDIT)
        if isinstance(exc, openai.RateLimitError):
            return LLMError("The AI service is busy (rate limited).", retryable=True)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return LLMError("The AI service refused our credentials; tell your administrator.")
        if isinstance(exc, openai.APIStatusError):
            if 300 <= exc.status_code < 400:
                return LLMError(
                    f"The AI service's endpoint answered with a redirect (HTTP {exc.status_code}),"
                    " which is not followed; set the endpoint to the address it redirects to."
                )
            return LLMError(
                f"The AI service answered with an error ({exc.status_code}).",
                retryable=exc.status_code >= 500,
            )
        if isinstance(exc, openai.APIError):
            return LLMError(f"The AI service reported an error: {exc.message}")
        return LLMError("The AI service failed unexpectedly.")

    def _async_client(self) -> Any:
        import openai

        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = openai.AsyncOpenAI(
                **self._options, http_client=sdk_async_http_client()
            )
        return client

    async def astream(self, prompt: Prompt) -> AsyncIterator[TextDelta | Usage]:
        import httpx2
        import openai
        from asgiref.sync import sync_to_async

        # The breaker's state is in the Redis cache (a blocking client): off the loop.
        breaker = functools.partial(sync_to_async, thread_sensitive=False)
        await breaker(self._check_breaker)()
        streamed = finished = False
        try:
            # Only the request is retried: once its stream is open, nothing is.
            response = await acall_with_retries(
                lambda: self._async_client().chat.completions.create(
                    model=self.model,
                    messages=prompt.messages,  # type: ignore[arg-type]
                    max_tokens=prompt.max_tokens,
                    temperature=prompt.temperature,
                    stream=True,
                    stream_options={"include_usage": True},
                ),
                self.retry_policy,
            )
            try:
                async for chunk in response:
                    if chunk.choices:
                        choice = chunk.choices[0]
                        if choice.finish_reason == "error":
                            raise LLMError("The AI service stopped with an error mid-reply.")
                        if choice.delta and choice.delta.content:
                            streamed = True
                            yield TextDelta(choice.delta.content)
                        finished = finished or choice.finish_reason is not None
                    if chunk.usage:
                        yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            except (httpx2.TransportError, ValueError) as exc:  # the stream broke or garbled
                raise LLMError(CUT_OFF) from exc
            finally:
                await response.close()  # an interrupted reply stops the provider's generation
            # Only a finish_reason says the reply is whole: a closed connection is no proof.
            if not finished:
                raise LLMError(CUT_OFF)
        except openai.OpenAIError as exc:
            await breaker(self.breaker.record_failure)()
            error = self._error(exc)
            if streamed:
                error.retryable = False  # never retry automatically once tokens have streamed
            raise error from exc
        except LLMError:
            await breaker(self.breaker.record_failure)()
            raise
        await breaker(self.breaker.record_success)()

    def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, json: bool = False
    ) -> str:
        import openai

        self._check_breaker()
        options: dict[str, Any] = {}
        if json:
            options["response_format"] = {"type": "json_object"}
        try:
            response = call_with_retries(
                lambda: self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=max_tokens,
                    temperature=0.2,
                    **options,
                ),
                self.retry_policy,
            )
        except openai.OpenAIError as exc:
            self.breaker.record_failure()
            raise self._error(exc) from exc
        message = response.choices[0].message if response.choices else None
        if message is None:
            self.breaker.record_failure()
            raise LLMError(UNREADABLE)
        self.breaker.record_success()
        return message.content or ""

    def cost(self, usage: Usage) -> Decimal | None:
        prompt_price, completion_price = self.prices
        if prompt_price is None or completion_price is None:
            return None
        if math.isnan(prompt_price) or math.isnan(completion_price):
            return None
        total = usage.prompt_tokens * prompt_price + usage.completion_tokens * completion_price
        return Decimal(str(round(total / 1_000_000, 6)))


# --- offline stand-in -----------------------------------------------------------------

WORD = re.compile(r"[a-z0-9']+")
STOPWORDS = set(
    "a an the and or but if of to in on at for with by from is are was were be been being it "
    "this that these those i you he she we they me my your our their do does did how what when "
    "where why which who can could should would will may might must have has had not no so as "
    "about into than then there here just also very".split()
)


def keywords(text: str) -> set[str]:
    """Content words, crudely stemmed to five letters, for overlap scoring."""
    return {word[:5] for word in WORD.findall(text.lower()) if word not in STOPWORDS}


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [part.strip() for part in parts if part.strip()]


# A fenced code block of a passage (knowledge.chunking.fenced): quoted whole, never cut
# into "sentences".
_FENCED = re.compile(r"^(`{3,})[^\n`]*\n.*?\n\1$", re.DOTALL | re.MULTILINE)


def prose_and_code(text: str) -> list[tuple[str, bool]]:
    """A passage as its sentences and its whole code blocks, in order: (piece, is_code)."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in _FENCED.finditer(text):
        pieces += [(sentence, False) for sentence in sentences(text[position : match.start()])]
        pieces.append((match.group(0), True))
        position = match.end()
    pieces += [(sentence, False) for sentence in sentences(text[position:])]
    return pieces


class OfflineStandIn:
    """Scripted from the scenario and the retrieved passages; labelled as such on the page."""

    model_id = STAND_IN_MODEL_ID
    is_stand_in = True

    def __init__(self, token_delay_ms: int = 0) -> None:
        self.token_delay = token_delay_ms / 1000

    def reply_text(self, context: ConversationContext) -> str:
        if context.mode == "training":
            return self._answer_from_passages(context)
        return self._persona_turn(context)

    def _persona_turn(self, context: ConversationContext) -> str:
        objections = context.objections
        turn = context.persona_turns_so_far  # the opening line was turn 0
        if turn - 1 < len(objections):
            lead = "I hear you. " if "?" not in context.learner_text else "Fair question. "
            return lead + objections[turn - 1]
        return (
            "Alright, you have answered what I came with. I will think it over and get back "
            f"to you. Thanks for your time. {END_MARKER}"
        )

    def _answer_from_passages(self, context: ConversationContext) -> str:
        wanted = keywords(context.learner_text)
        scored = []
        for passage in context.passages:
            for piece, _ in prose_and_code(passage.text):
                overlap = len(wanted & keywords(piece))
                if overlap:
                    scored.append((overlap, passage.number, piece))
        if not scored:
            return (
                "The training materials do not cover that question, so I cannot answer it "
                "from them. Try asking about something in your knowledge base, or ask your "
                "manager to add a document that covers it."
            )
        scored.sort(key=lambda item: (-item[0], item[1]))
        # The best pieces, in the order they come in the passages: an extract that reads
        # in sequence, code intact (a code block stands on its own after its source).
        best: list[tuple[int, str]] = []
        for _, number, piece in scored:
            if piece not in (chosen for _, chosen in best):
                best.append((number, piece))
            if len(best) == 3:
                break
        best.sort(key=lambda item: (item[0], self._position(context, *item)))
        lines = ["Here is what the training materials say:", ""]
        for number, piece in best:
            if piece.startswith("```"):
                lines += ["", f"From source [{number}]:", "", piece, ""]
            else:
                lines.append(f"- {piece} [{number}]")
        return "\n".join(lines).strip()

    @staticmethod
    def _position(context: ConversationContext, number: int, piece: str) -> int:
        passage = next(p for p in context.passages if p.number == number)
        return passage.text.find(piece)

    async def astream(self, prompt: Prompt) -> AsyncIterator[TextDelta | Usage]:
        text = self.reply_text(prompt.context)
        for piece in re.findall(r"\S+\s*", text):
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            yield TextDelta(piece)
        prompt_tokens = sum(count_tokens(m["content"]) for m in prompt.messages)
        yield Usage(prompt_tokens, count_tokens(text))

    def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, json: bool = False
    ) -> str:
        raise LLMError("The offline stand-in does not write free text.")

    def cost(self, usage: Usage) -> Decimal | None:
        return Decimal("0")


class UnreadableKeyModel:
    """The organization's own key or endpoint cannot be used: every call fails with that
    reason (a sentence saying what an organization admin must fix)."""

    is_stand_in = False

    def __init__(self, model_id: str, reason: str) -> None:
        self.model_id = model_id
        self.reason = reason

    async def astream(self, prompt: Prompt) -> AsyncIterator[TextDelta | Usage]:
        raise LLMError(self.reason)
        yield  # an async generator, like the others  # pragma: no cover

    def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, json: bool = False
    ) -> str:
        raise LLMError(self.reason)

    def cost(self, usage: Usage) -> Decimal | None:
        return None


@functools.lru_cache(maxsize=32)
def _build(
    provider: str,
    base_url: str,
    model: str,
    timeout: float,
    delay: int,
    api_key: str = "",
    breaker_scope: str = "",
) -> ChatModel:
    if provider == "openai":
        return OpenAIChatModel(
            base_url=base_url,
            api_key=api_key or settings.LLM_API_KEY,
            breaker_scope=breaker_scope,
            model=model,
            timeout=timeout,
            max_retries=settings.LLM_MAX_RETRIES,
            app_url=settings.LLM_APP_URL,
            price_prompt_per_mtok=settings.LLM_PRICE_PROMPT_PER_MTOK,
            price_completion_per_mtok=settings.LLM_PRICE_COMPLETION_PER_MTOK,
        )
    return OfflineStandIn(token_delay_ms=delay)


def get_chat_model(model_override: str = "", organization_id: int | None = None) -> ChatModel:
    """The configured chat model (LLM_PROVIDER "openai" with LLM_API_KEY or LLM_BASE_URL set,
    else the offline stand-in). A scenario may name its own model; an organization with
    its own LLM key (accounts.ProviderCredential) uses that key and endpoint."""
    credential = credentials.resolve(organization_id, ProviderService.LLM)
    model = model_override or settings.LLM_MODEL
    if isinstance(credential, credentials.UnusableKey):
        return UnreadableKeyModel(model, credential.reason)
    if credential is not None:
        base_url = credential.base_url or settings.LLM_BASE_URL
        return _build(
            "openai", base_url, model, settings.LLM_TIMEOUT_SECONDS, 0, credential.api_key,
            f"org{organization_id}",
        )  # fmt: skip
    return _build(
        settings.LLM_PROVIDER,
        settings.LLM_BASE_URL,
        model_override or settings.LLM_MODEL,
        settings.LLM_TIMEOUT_SECONDS,
        settings.LLM_STAND_IN_TOKEN_DELAY_MS,
    )
