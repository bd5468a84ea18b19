"""The hosted chat client against a local server speaking OpenAI's wire format (SSE too)."""

import time

import pytest

from knowledge.tests.openai_wire import Answer, Delay, Fail, OpenAIWireServer, Redirect
from training.llm import (
    ConversationContext,
    LLMError,
    LLMUnavailable,
    OpenAIChatModel,
    Prompt,
    TextDelta,
    Usage,
)
from training.tests.chat_wire import BreakMidway, EmptyChoices, EndWithout, add_chat
from training.tests.run_turns import events_of, run

pytestmark = pytest.mark.django_db  # the circuit breaker keeps its state in Redis


@pytest.fixture
def wire():
    with OpenAIWireServer() as server:
        server.chat = add_chat(server)
        yield server


def model(wire, **options):
    return OpenAIChatModel(
        base_url=wire.base_url,
        api_key="sk-or-secret-9876",
        model="openai/gpt-4o-mini",
        price_prompt_per_mtok=0.15,
        price_completion_per_mtok=0.6,
        **options,
    )


def prompt():
    return Prompt(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        context=ConversationContext(mode="roleplay"),
        max_tokens=50,
    )


def test_tokens_stream_in_order_with_usage_and_cost(wire):
    wire.chat["reply"] = "one two three four"
    events = events_of(model(wire), prompt())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usage = next(e for e in events if isinstance(e, Usage))
    assert text == "one two three four"
    assert len([e for e in events if isinstance(e, TextDelta)]) == 4
    assert usage.completion_tokens == 4
    assert model(wire).cost(usage) > 0
    sent = wire.requests[0]
    assert sent.body["stream"] is True
    assert sent.body["max_tokens"] == 50
    assert sent.headers["x-title"] == "AvatarAdam"


def test_a_429_before_streaming_is_retried(wire):
    wire.script(Fail(429, retry_after="0"))
    text = "".join(e.text for e in events_of(model(wire), prompt()) if isinstance(e, TextDelta))
    assert text == "Hello from the wire server."
    assert len(wire.requests) == 2


def test_a_plain_429_gets_more_than_three_attempts_before_anything_streamed(wire):
    wire.script(*[Fail(429, retry_after="0")] * 3)  # three 429s, then the reply
    text = "".join(e.text for e in events_of(model(wire), prompt()) if isinstance(e, TextDelta))
    assert text == "Hello from the wire server."
    assert len(wire.requests) == 4
    wire.script(*[Fail(503, retry_after="0")] * 3)
    assert model(wire).complete([{"role": "user", "content": "Hi"}], max_tokens=20)
    assert len(wire.requests) == 8


def test_retries_end_after_six_attempts_with_a_retryable_busy_error(wire):
    wire.script(*[Fail(429, retry_after="0")] * 7)
    with pytest.raises(LLMError, match="busy") as failure:
        events_of(model(wire), prompt())
    assert failure.value.retryable is True
    assert len(wire.requests) == 6


def test_retry_after_is_honoured_in_seconds_and_as_an_http_date(wire):
    from email.utils import formatdate

    started = time.monotonic()
    # The date 2-3 s away (an HTTP date has whole seconds): after the first second's wait
    # it is still 1-2 s away.
    wire.script(Fail(429, retry_after="1"), Fail(503, retry_after=formatdate(time.time() + 3)))
    text = "".join(e.text for e in events_of(model(wire), prompt()) if isinstance(e, TextDelta))
    assert text == "Hello from the wire server."
    assert 1.9 <= time.monotonic() - started < 6
    assert len(wire.requests) == 3


def test_without_retry_after_the_retries_back_off(wire):
    wire.script(Fail(503), Fail(503))
    started = time.monotonic()
    events_of(model(wire), prompt())
    assert 0.5 * 0.75 + 1.0 * 0.75 <= time.monotonic() - started < 5  # 0.5 s, 1 s less jitter
    assert len(wire.requests) == 3


def test_a_retry_after_longer_than_a_turn_should_wait_fails_at_once(wire):
    wire.script(Fail(429, retry_after="60"))
    started = time.monotonic()
    with pytest.raises(LLMError, match="busy") as failure:
        events_of(model(wire), prompt())
    assert time.monotonic() - started < 3  # not held for a minute
    assert failure.value.retryable is True  # a later turn may try again
    assert len(wire.requests) == 1


def test_an_error_mid_stream_inside_http_200_keeps_the_tokens_and_is_not_retried(wire):
    wire.chat["reply"] = "one two three four five six"
    wire.script(BreakMidway())
    received = []

    async def consume():
        async for event in model(wire).astream(prompt()):
            if isinstance(event, TextDelta):
                received.append(event.text)

    with pytest.raises(LLMError) as failure:
        run(consume())
    assert "".join(received) == "one two three "
    assert failure.value.retryable is False
    assert len(wire.requests) == 1


def test_a_refused_key_is_a_clear_error_without_the_key(wire):
    wire.script(Fail(401))
    with pytest.raises(LLMError) as failure:
        events_of(model(wire), prompt())
    assert "credentials" in str(failure.value)
    assert "sk-or-secret" not in str(failure.value)
    assert len(wire.requests) == 1


def test_a_timeout_is_reported_quickly(wire):
    wire.script(Delay(3), Delay(3))
    started = time.monotonic()
    with pytest.raises(LLMError, match="too long"):
        events_of(model(wire, timeout=0.5, max_retries=0), prompt())
    assert time.monotonic() - started < 2.5


def test_repeated_failures_open_the_circuit_and_calls_fail_fast(wire):
    wire.script(*[Fail(500, retry_after="0")] * 5)
    client = model(wire, max_retries=0)
    for _ in range(5):
        with pytest.raises(LLMError):
            events_of(client, prompt())
    calls = len(wire.requests)
    with pytest.raises(LLMUnavailable, match="try again"):
        events_of(client, prompt())
    assert len(wire.requests) == calls  # the open circuit sent nothing


# --- an organization's own provider key (accounts.ProviderCredential) ------------------


def test_an_organization_with_its_own_key_calls_its_endpoint_with_that_key(
    wire, acme, globex, settings
):
    from accounts.models import ProviderCredential
    from training.llm import get_chat_model

    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True  # the wire server is on 127.0.0.1

    ProviderCredential.objects.create(
        organization=acme, service="llm", base_url=wire.base_url, api_key="sk-acme-own-key"
    )
    answer = get_chat_model("", acme.pk).complete(
        [{"role": "user", "content": "Hi"}], max_tokens=20
    )

    assert answer == "Hello from the wire server."
    assert wire.requests[-1].headers["authorization"] == "Bearer sk-acme-own-key"
    assert get_chat_model("", globex.pk).is_stand_in  # others keep the platform's model


def test_an_unreadable_organization_key_is_a_clear_error_naming_the_field(acme):
    from django.db import connection

    from accounts.models import ProviderCredential
    from training.llm import LLMError, get_chat_model

    credential = ProviderCredential.objects.create(
        organization=acme, service="llm", api_key="sk-acme-own-key"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_providercredential SET api_key = 'gAAAAAtampered' WHERE id = %s",
            [credential.pk],
        )
    with pytest.raises(LLMError, match=r"Cannot decrypt provider key “API key”.*enter the key"):
        get_chat_model("", acme.pk).complete([{"role": "user", "content": "Hi"}], max_tokens=5)


def test_an_organization_endpoint_that_is_not_public_https_is_never_called(wire, acme):
    from accounts.models import ProviderCredential
    from training.llm import LLMError, get_chat_model

    ProviderCredential.objects.create(
        organization=acme, service="llm", base_url=wire.base_url, api_key="sk-acme-own-key"
    )
    with pytest.raises(LLMError, match=r"must be an https:// URL\. An organization admin must"):
        get_chat_model("", acme.pk).complete([{"role": "user", "content": "Hi"}], max_tokens=5)
    ProviderCredential.objects.filter(organization=acme).update(
        base_url="https://127.0.0.1:9/v1"
    )  # saved before the check existed, or by a script: refused at use too
    with pytest.raises(LLMError, match="private or reserved address"):
        get_chat_model("", acme.pk).complete([{"role": "user", "content": "Hi"}], max_tokens=5)
    assert wire.requests == []


def test_an_organization_key_left_empty_never_falls_back_to_the_platform_key(acme, settings):
    from accounts.models import ProviderCredential
    from training.llm import LLMError, get_chat_model

    settings.LLM_API_KEY = "sk-platform-secret"
    ProviderCredential.objects.create(organization=acme, service="llm", api_key="")
    with pytest.raises(LLMError, match="key is empty"):
        get_chat_model("", acme.pk).complete([{"role": "user", "content": "Hi"}], max_tokens=5)


# --- hardening: redirects, streams that end early, unreadable answers, quota ----------


def test_a_redirect_from_the_endpoint_is_not_followed(wire):
    with OpenAIWireServer() as elsewhere:
        elsewhere.chat = add_chat(elsewhere)
        redirect = Redirect(f"{elsewhere.base_url}/chat/completions")
        wire.script(redirect, redirect)
        with pytest.raises(LLMError, match="redirect") as streamed:
            events_of(model(wire), prompt())
        with pytest.raises(LLMError, match="redirect"):
            model(wire).complete([{"role": "user", "content": "Hi"}], max_tokens=20)
        assert elsewhere.requests == []  # the prompt never reached the other address
    assert streamed.value.retryable is False
    assert len(wire.requests) == 2


def _consume(client):
    received = []

    async def consume():
        async for event in client.astream(prompt()):
            if isinstance(event, TextDelta):
                received.append(event.text)

    with pytest.raises(LLMError) as failure:
        run(consume())
    return "".join(received), failure.value


@pytest.mark.parametrize("ending", ["done", "close", "cut"])
def test_a_stream_that_ends_without_a_finish_reason_is_an_error(wire, ending):
    wire.chat["reply"] = "one two three four five six"
    wire.script(EndWithout(ending, tokens=3))
    text, failure = _consume(model(wire))
    assert text == "one two three "
    assert "cut off" in str(failure)
    assert failure.retryable is False  # tokens had streamed
    assert len(wire.requests) == 1


def test_a_stream_of_empty_choices_is_an_error(wire):
    wire.script(EmptyChoices())
    text, failure = _consume(model(wire))
    assert text == ""
    assert "cut off" in str(failure)


def test_an_empty_json_answer_is_our_error_not_a_type_error(wire):
    wire.script(Answer({}))
    with pytest.raises(LLMError, match="could not read"):
        model(wire).complete([{"role": "user", "content": "Hi"}], max_tokens=20)


def test_an_exhausted_quota_is_a_billing_problem_and_not_retried(wire):
    quota = Fail(429, "You exceeded your current quota.", type="insufficient_quota",
                 code="insufficient_quota", retry_after="0")  # fmt: skip
    wire.script(quota, quota)
    with pytest.raises(LLMError) as streamed:
        events_of(model(wire), prompt())
    with pytest.raises(LLMError) as whole:
        model(wire).complete([{"role": "user", "content": "Hi"}], max_tokens=20)
    for failure in (streamed.value, whole.value):
        assert str(failure).startswith("The AI provider account has run out of credit")
        assert "busy" not in str(failure)
        assert failure.retryable is False
    assert len(wire.requests) == 2  # one each: never retried
