"""The voice app's errors: refusals (closing a socket with a documented code) and the one
exception family every speech provider raises."""

from __future__ import annotations

from core.errors import Refused


class VoiceRefused(Refused):
    """A voice connection or message refused; `close_code` is 4000 + status."""


class SpeechProviderError(Exception):
    """A speech provider (speech-to-text or text-to-speech) failed.

    str(exc) is a sentence a learner can read; `retryable` says whether trying again
    (or the provider's HTTP fallback) may help: never for a bad key, quota or payment.
    `out_of_credit`: the provider account's quota or credit is used up (the
    organization's admins are told: voice/billing.py).
    """

    def __init__(
        self, message: str, *, retryable: bool = False, out_of_credit: bool = False
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.out_of_credit = out_of_credit

    def again(self, *, retryable: bool | None = None) -> SpeechProviderError:
        """A fresh error saying the same (an instance carries its traceback: never raise
        a shared one), optionally with another `retryable`."""
        return SpeechProviderError(
            str(self),
            retryable=self.retryable if retryable is None else retryable,
            out_of_credit=self.out_of_credit,
        )
