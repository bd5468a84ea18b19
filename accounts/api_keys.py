"""API-key authentication for servers: `Authorization: Api-Key <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most once a minute


@dataclass
class ApiKeyPrincipal:
    """The actor behind an API key: acts for its organization with the key's role."""

    api_key: ApiKey
    pk: None = None
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_superuser: bool = False
    is_active: bool = True
    role: str = field(init=False)
    organization_id: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.role = self.api_key.role
        self.organization_id = self.api_key.organization_id

    @property
    def idempotency_caller(self) -> str:
        """Who an Idempotency-Key belongs to (core.idempotency): this key."""
        return f"key-{self.api_key.prefix}"

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        raw_key = ""
        if header.startswith(f"{self.keyword} "):
            raw_key = header[len(self.keyword) + 1 :].strip()
        elif request.META.get("HTTP_X_API_KEY"):
            raw_key = request.META["HTTP_X_API_KEY"].strip()
        if not raw_key:
            return None
        api_key = (
            ApiKey.objects.active()
            .select_related("organization")
            .filter(key_hash=ApiKey.hash_key(raw_key))
            .first()
        )
        if api_key is None:
            raise exceptions.AuthenticationFailed(
                "This API key is not valid or has been revoked.", code="api_key_invalid"
            )
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
