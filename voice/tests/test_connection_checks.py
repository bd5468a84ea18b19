"""An organization admin tests a saved provider key: one cheap read per service against
a local server speaking the provider's protocol, answered in a sentence."""

from __future__ import annotations

import socket

import pytest
from django.urls import reverse

from accounts import connection_tests
from accounts.models import ProviderCredential, ProviderService
from voice.tests.avatar_server import LIVEAVATAR_KEY, LiveAvatarStub, running_in_thread
from voice.tests.speech_servers import (
    ELEVENLABS_KEY,
    OPENAI_KEY,
    ElevenLabsStub,
    OpenAIStub,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _private_endpoints(settings):
    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True  # the stubs are http://127.0.0.1


def _key(organization, service, api_key, base_url):
    return ProviderCredential.objects.create(
        organization=organization, service=service, api_key=api_key, base_url=base_url
    )


def test_every_service_has_a_connection_test():
    assert connection_tests.registered() == set(ProviderService.values)


def test_an_openai_compatible_key_is_tested_with_its_model_list(acme):
    with running_in_thread(OpenAIStub(model="gpt-4o-mini-transcribe")) as stub:
        good = _key(acme, ProviderService.SPEECH_TO_TEXT, OPENAI_KEY, stub.base_url)
        worked, message = connection_tests.test_key(good)
        good.api_key = "sk-wrong-key"
        refused, why = connection_tests.test_key(good)
    assert worked, message
    assert message == "Connected: the key works and the service lists 2 models."
    assert not refused
    assert "refused this key (HTTP 401)" in why
    assert "sk-wrong-key" not in why


def test_an_elevenlabs_and_a_liveavatar_key_are_tested(acme):
    with running_in_thread(ElevenLabsStub(model="eleven_flash_v2_5", voice_id="v")) as tts:
        speech = _key(acme, ProviderService.TEXT_TO_SPEECH, ELEVENLABS_KEY, tts.origin)
        assert connection_tests.test_key(speech) == (
            True, "Connected: the key works and 2 speech models are available.",
        )  # fmt: skip
    with running_in_thread(LiveAvatarStub()) as avatars:
        face = _key(acme, ProviderService.AVATAR, LIVEAVATAR_KEY, avatars.base_url)
        assert connection_tests.test_key(face) == (
            True, "Connected: the key works and its account has 2 avatars of its own.",
        )  # fmt: skip


def test_an_endpoint_nobody_answers_says_so(acme):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once we leave: nothing listens there
    key = _key(acme, ProviderService.LLM, "sk-anything", f"http://127.0.0.1:{port}/v1")
    assert connection_tests.test_key(key) == (False, f"127.0.0.1:{port} could not be reached.")


def test_the_admin_action_tells_the_organization_admin(client, carol, acme):
    with running_in_thread(LiveAvatarStub()) as avatars:
        key = _key(acme, ProviderService.AVATAR, LIVEAVATAR_KEY, avatars.base_url)
        client.force_login(carol)
        response = client.post(
            reverse("admin:accounts_providercredential_changelist"),
            {"action": "test_connection", "_selected_action": [key.pk]},
            follow=True,
        )
    page = response.content.decode()
    assert "Video avatar key (" in page
    assert "Connected: the key works and its account has 2 avatars of its own." in page
