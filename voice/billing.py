"""Telling an organization's admins that a speech or avatar provider account is out of
credit (the language model's is training/billing.py): the call goes on as it can, and
only an admin (or the platform operator) can fix it."""

from __future__ import annotations

from accounts import notices
from accounts.models import NoticeKind, ProviderCredential, ProviderService

_WHAT = {
    ProviderService.SPEECH_TO_TEXT: (
        NoticeKind.SPEECH_CREDIT,
        "speech recognition",
        "learners' voice calls cannot hear them",
    ),
    ProviderService.TEXT_TO_SPEECH: (
        NoticeKind.SPEECH_CREDIT,
        "speech synthesis",
        "voice calls answer in text only",
    ),
    ProviderService.AVATAR: (
        NoticeKind.AVATAR_CREDIT,
        "video avatar",
        "voice calls go on without the persona's video face",
    ),
}


def tell_admins_out_of_credit(organization_id: int, service: str) -> None:
    """A notice on the admins' home page (and at most one email a day per kind)."""
    kind, name, effect = _WHAT[ProviderService(service)]
    own_key = ProviderCredential.objects.filter(
        organization_id=organization_id, service=service
    ).exists()
    whose = (
        f"your organization's {name} key (Provider keys in the admin); add credit or change "
        "that account's plan"
        if own_key
        else f"the platform's {name} account; tell the platform operator"
    )
    notices.notify_admins(
        organization_id=organization_id,
        kind=kind,
        message=f"The {name} provider answered that the account has run out of credit or "
        f"quota, so {effect}. It is {whose}.",
    )
