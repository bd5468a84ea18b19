"""What the accounts app does: one verb per function, transactions here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import access, audit
from accounts.access import Actor
from accounts.models import (
    ApiKey,
    AuditAction,
    Organization,
    ProviderCredential,
    ProviderService,
    Role,
    User,
)


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    full_key: str  # shown once, never stored


@transaction.atomic
def create_api_key(*, actor: Actor, name: str, role: str = Role.MANAGER) -> CreatedApiKey:
    """Create an API key for the actor's organization. Raises PermissionDenied/ValidationError."""
    if not access.is_org_admin(actor) and not access.is_manager(actor):
        raise PermissionDenied("Only managers and organization admins can create API keys.")
    if not actor.organization_id:
        raise ValidationError("Platform operators create keys from an organization's admin page.")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name so you can recognise it later."})
    if role not in (Role.MANAGER, Role.ADMIN):
        raise ValidationError({"role": "An API key acts as a manager or an organization admin."})
    if role == Role.ADMIN and not access.is_org_admin(actor):
        raise PermissionDenied("Only organization admins can create admin keys.")
    full_key, prefix, key_hash = ApiKey.generate()
    api_key = ApiKey.objects.create(
        organization_id=actor.organization_id,
        name=name[:120],
        prefix=prefix,
        key_hash=key_hash,
        role=role,
        created_by=actor if isinstance(actor, User) else None,
    )
    audit.record(
        AuditAction.APIKEY_CREATED,
        actor=actor,
        target=api_key,
        changes={"name": api_key.name, "role": api_key.role, "prefix": api_key.prefix},
    )
    return CreatedApiKey(api_key=api_key, full_key=full_key)


@transaction.atomic
def revoke_api_key(*, actor: Actor, api_key_id: int) -> ApiKey:
    """Revoke a key of the actor's organization (404 for others'). Idempotent."""
    if not access.is_manager(actor):
        raise PermissionDenied("Only managers and organization admins can revoke API keys.")
    api_key = access.access_or_404(actor, ApiKey.objects.select_for_update(), pk=api_key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit.record(AuditAction.APIKEY_REVOKED, actor=actor, target=api_key,
                     changes={"prefix": api_key.prefix})  # fmt: skip
    return api_key


def revoke_refresh_tokens(user: User) -> int:
    """Blacklist every outstanding refresh token of `user`. Returns how many were revoked."""
    outstanding = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now()).exclude(
        blacklistedtoken__isnull=False
    )
    tokens = list(outstanding)
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in tokens], ignore_conflicts=True
    )
    return len(tokens)


@transaction.atomic
def create_organization(*, name: str, slug: str) -> Organization:
    return Organization.objects.create(name=name, slug=slug)


def record_user_changes(*, actor: Actor, user: User, before: dict[str, object]) -> None:
    """Audit a person's role or active flag changing (in the caller's transaction)."""
    after = {"role": user.role, "is_active": user.is_active}
    changes = audit.diff(before, after)
    if "role" in changes:
        audit.record(
            AuditAction.USER_ROLE_CHANGED,
            actor=actor,
            target=user,
            organization_id=user.organization_id,
            changes={"role": changes["role"]},
        )
    if changes.get("is_active") == [True, False]:
        audit.record(AuditAction.USER_DEACTIVATED, actor=actor, target=user,
                     organization_id=user.organization_id)  # fmt: skip


def on_user_access_changed(user: User, *, deactivated: bool, demoted: bool) -> None:
    """End a user's API sessions when they are deactivated or lose a role.

    Page sessions end by themselves: Django rejects inactive users and sessions made
    before a password change.
    """
    if deactivated or demoted:
        transaction.on_commit(lambda: revoke_refresh_tokens(user))


def record_provider_key_change(
    actor: Actor,
    credential: ProviderCredential,
    changes: dict[str, Any],
    *,
    created: bool = False,
    deleted: bool = False,
) -> None:
    """Audit a provider key change (call inside the change's transaction). The diff names
    what changed, never the key."""
    if not (changes or created or deleted):
        return
    audit.record(
        AuditAction.PROVIDER_KEY_CHANGED,
        actor=actor,
        organization_id=credential.organization_id,
        target=credential,
        changes={
            **changes,
            "service": credential.service,
            "event": "deleted" if deleted else "created" if created else "updated",
        },
    )


def provider_credential(organization_id: int | None, service: ProviderService | str):  # noqa: ANN201
    """The organization's own key for a hosted service, or None to use the platform's."""
    if organization_id is None:
        return None
    return ProviderCredential.objects.filter(
        organization_id=organization_id, service=service
    ).first()
