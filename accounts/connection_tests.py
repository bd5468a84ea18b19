"""Testing an organization's provider key: each app registers the check for the services
it calls (accounts knows none of their providers), the admin runs it."""

from __future__ import annotations

from collections.abc import Callable

from accounts.models import ProviderCredential
from core.connection_check import ConnectionProblem

Check = Callable[[str, str], str]  # (api key, endpoint or "") -> what a good answer shows
_checks: dict[str, Check] = {}


def register(service: str, check: Check) -> None:
    _checks[service] = check


def registered() -> set[str]:
    return set(_checks)


def test_key(credential: ProviderCredential) -> tuple[bool, str]:
    """(worked, a sentence): one cheap read with the saved key and endpoint."""
    check = _checks.get(credential.service)
    if check is None:
        return False, "No connection test is known for this service."
    api_key = credential.api_key
    if not isinstance(api_key, str) or not api_key:
        return False, "The saved key cannot be read; save it again."
    try:
        return True, check(api_key, credential.base_url or "")
    except ConnectionProblem as exc:
        return False, str(exc)
