"""Telling a provider's billing refusal from its other errors, whichever client raised it."""

from __future__ import annotations

from core.provider_http import is_quota_exhausted


def is_out_of_credit(exc: BaseException) -> bool:
    """Whether `exc` (an SDK status error, or our error raised from one) says the provider
    account has run out of credit: HTTP 402, or 429 `insufficient_quota`."""
    for error in (exc, exc.__cause__):
        status = getattr(error, "status_code", None)
        if status is None:
            continue
        if status == 402 or is_quota_exhausted(getattr(error, "body", None)):
            return True
    return False
