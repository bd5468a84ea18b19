"""Provider credentials resolved in one place, for every hosted service."""

import pytest
from django.db import connection

from accounts import credentials
from accounts.models import ProviderCredential, ProviderService

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("service", [ProviderService.TEXT_TO_SPEECH, ProviderService.AVATAR])
def test_each_service_resolves_an_organizations_own_key_or_none(acme, globex, service):
    ProviderCredential.objects.create(
        organization=acme, service=service, base_url="https://1.1.1.1/v1", api_key="sk-own"
    )
    assert credentials.resolve(acme.pk, service) == credentials.OrganizationKey(
        api_key="sk-own", base_url="https://1.1.1.1/v1"
    )
    assert credentials.resolve(globex.pk, service) is None  # the platform's key applies
    assert credentials.resolve(None, service) is None


def test_a_key_that_cannot_be_used_says_why_and_names_the_service(acme):
    credential = ProviderCredential.objects.create(
        organization=acme, service=ProviderService.SPEECH_TO_TEXT, api_key="sk-own"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_providercredential SET api_key = 'gAAAAAtampered' WHERE id = %s",
            [credential.pk],
        )
    unusable = credentials.resolve(acme.pk, ProviderService.SPEECH_TO_TEXT)
    assert isinstance(unusable, credentials.UnusableKey)
    assert "enter the key again" in unusable.reason

    ProviderCredential.objects.filter(pk=credential.pk).delete()
    ProviderCredential.objects.create(
        organization=acme,
        service=ProviderService.SPEECH_TO_TEXT,
        api_key="",
    )
    assert "speech to text key is empty" in credentials.resolve(acme.pk, "speech_to_text").reason

    ProviderCredential.objects.filter(organization=acme).update(
        api_key="sk-own", base_url="https://127.0.0.1:9/v1"
    )  # a private address, saved before the check or by a script
    reason = credentials.resolve(acme.pk, "speech_to_text").reason
    assert "speech to text endpoint cannot be used" in reason
    assert "private or reserved address" in reason
