"""Provider credentials, resolved in one place for every hosted service (LLM, embeddings,
speech, avatar): an organization's own key, decrypted, with its endpoint checked again
(DNS may have changed since it was saved), or the reason it cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from accounts.encryption import DecryptionError, reveal
from accounts.models import ProviderCredential, ProviderService
from core.endpoints import check_provider_endpoint


@dataclass(frozen=True)
class OrganizationKey:
    """An organization's own usable key; `base_url` is "" for the provider's default."""

    api_key: str
    base_url: str


@dataclass(frozen=True)
class UnusableKey:
    """The organization has its own key but it cannot be used. `reason` is a sentence an
    organization admin can act on; the platform's key is never used instead."""

    reason: str


def resolve(
    organization_id: int | None, service: ProviderService | str
) -> OrganizationKey | UnusableKey | None:
    """The organization's own credential for `service`: usable, unusable (with why), or
    None when it has none (the platform's configuration applies)."""
    if organization_id is None:
        return None
    credential = ProviderCredential.objects.filter(
        organization_id=organization_id, service=service
    ).first()
    if credential is None:
        return None
    label = ProviderService(credential.service).label.lower()
    try:
        api_key = reveal(credential.api_key)
        if credential.base_url:
            check_provider_endpoint(credential.base_url)
    except DecryptionError as exc:
        return UnusableKey(f"{exc} An organization admin must enter the key again.")
    except ValidationError as exc:
        return UnusableKey(
            f"The organization's {label} endpoint cannot be used: {exc.messages[0]} "
            "An organization admin must correct it."
        )
    if not api_key:  # never send the platform's key to an organization's endpoint
        return UnusableKey(
            f"The organization's {label} key is empty; an organization admin must enter it."
        )
    return OrganizationKey(api_key=api_key, base_url=credential.base_url)
