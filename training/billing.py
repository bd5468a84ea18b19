"""Telling an organization's admins that the language model's account is out of credit."""

from __future__ import annotations

from accounts import notices
from accounts.models import NoticeKind, ProviderCredential, ProviderService


def tell_admins_llm_out_of_credit(organization_id: int) -> None:
    """The organization's admins get a notice (and at most one email a day) saying that
    learners' replies and debriefs fail until the account behind the key has credit."""
    own_key = ProviderCredential.objects.filter(
        organization_id=organization_id, service=ProviderService.LLM
    ).exists()
    whose = (
        "your organization's language model key (Provider keys in the admin); add credit "
        "or change that account's plan"
        if own_key
        else "the platform's language model account; tell the platform operator"
    )
    notices.notify_admins(
        organization_id=organization_id,
        kind=NoticeKind.LLM_CREDIT,
        message="The AI provider answered that the account has run out of credit, so "
        f"learners' replies and debriefs are failing. It is {whose}.",
    )
