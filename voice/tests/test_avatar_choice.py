"""A scenario's video avatar is chosen from the list LiveAvatar gives for the
organization's key (the account's own avatars first, then the public ones, none expired),
and the call opens the face with it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from training.models import Scenario
from training.tests.factories import make_scenario
from training.tests.test_admin import change_scenario
from voice.avatar import get_avatar_provider
from voice.avatar.liveavatar import LiveAvatar
from voice.tests.avatar_server import (
    AVATAR_ID,
    EXPIRED_AVATAR_ID,
    LIVEAVATAR_KEY,
    PUBLIC_AVATAR_ID,
    LiveAvatarStub,
    running_in_thread,
)
from voice.tests.speech_servers import run_bounded, running

pytestmark = pytest.mark.django_db


@pytest.fixture
def liveavatar(settings):
    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True  # the stub is http://127.0.0.1
    settings.LIVEAVATAR_API_KEY = LIVEAVATAR_KEY
    settings.LIVEAVATAR_AVATAR_ID = AVATAR_ID
    settings.LIVEAVATAR_TIMEOUT_SECONDS = 3.0
    with running_in_thread(LiveAvatarStub()) as stub:
        settings.LIVEAVATAR_BASE_URL = stub.base_url
        yield stub


def test_the_key_lists_its_own_avatars_first_then_public_ones_and_no_expired_one(settings):
    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True

    async def listed():
        async with running(LiveAvatarStub()) as stub:
            provider = LiveAvatar(api_key=LIVEAVATAR_KEY, base_url=stub.base_url,
                                  avatar_id=AVATAR_ID)  # fmt: skip
            return await provider.avatar_choices(), stub.avatar_lists

    choices, asked = run_bounded(listed())
    assert [(c.avatar_id, c.public) for c in choices] == [(AVATAR_ID, False),
                                                         (PUBLIC_AVATAR_ID, True)]  # fmt: skip
    assert EXPIRED_AVATAR_ID not in {c.avatar_id for c in choices}
    assert asked == ["/v1/avatars", "/v1/avatars/public"]


def test_the_scenario_form_offers_the_keys_avatars_and_keeps_the_choice(client, alice,
                                                                       liveavatar):  # fmt: skip
    scenario = make_scenario(alice.organization, avatar="hosted")
    client.force_login(alice)

    page = client.get(reverse("admin:training_scenario_change", args=[scenario.pk]))
    field = page.context["adminform"].form.fields["avatar_id"]
    assert [value for value, _ in field.choices] == ["", AVATAR_ID, PUBLIC_AVATAR_ID]
    assert "Wayne (public)" in page.content.decode()

    response = change_scenario(client, scenario, avatar_id=PUBLIC_AVATAR_ID)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Scenario.objects.get(family=scenario.family, is_current=True).avatar_id == (
        PUBLIC_AVATAR_ID
    )
    # An avatar the key cannot use (expired) is refused on the form, nothing saved.
    current = Scenario.objects.get(family=scenario.family, is_current=True)
    response = change_scenario(client, current, avatar_id=EXPIRED_AVATAR_ID)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert Scenario.objects.get(family=scenario.family, is_current=True).avatar_id == (
        PUBLIC_AVATAR_ID
    )


def test_without_a_key_the_form_says_why_and_takes_a_typed_id(client, alice, settings):
    settings.LIVEAVATAR_API_KEY = ""
    scenario = make_scenario(alice.organization)
    client.force_login(alice)

    page = client.get(reverse("admin:training_scenario_change", args=[scenario.pk]))
    assert "could not be loaded: The avatar service (LiveAvatar) has no API key" in (
        page.content.decode()
    )
    response = change_scenario(client, scenario, avatar_id="not an id!")
    assert response.status_code == 200
    assert "avatar_id must be a LiveAvatar avatar id" in response.content.decode()


def test_the_api_refuses_an_avatar_id_that_cannot_be_one(api_client, alice):
    api_client.force_authenticate(alice)
    scenario = make_scenario(alice.organization)
    url = reverse("api-scenario-detail", args=[scenario.pk])

    response = api_client.patch(url, {"avatar_id": "../../sessions"}, format="json")

    assert response.status_code == 400, response.content
    assert "avatar_id must be a LiveAvatar avatar id" in response.content.decode()
    assert Scenario.objects.get(pk=scenario.pk).avatar_id == ""


def test_the_scenarios_avatar_comes_before_the_installations(settings, liveavatar):
    chosen = get_avatar_provider(None, hosted=True, avatar_id=PUBLIC_AVATAR_ID)
    assert chosen.avatar_id == PUBLIC_AVATAR_ID
    assert get_avatar_provider(None, hosted=True).avatar_id == AVATAR_ID
