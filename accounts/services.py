"""What the accounts app does: one verb per function, transactions here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
import structlog
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import access, audit
from accounts.access import Actor
from accounts.models import (
    KNOWLEDGE_LIMIT_FIELDS,
    ApiKey,
    AuditAction,
    Organization,
    ProviderCredential,
    Role,
    Team,
    User,
)

logger = structlog.get_logger(__name__)
# The jti of the refresh token a sign-in issued, carried by every token rotated from it.
REFRESH_FAMILY_CLAIM = "family"


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


def revoke_reused_refresh_family(raw_token: str) -> int:
    """A refresh token presented again after it was rotated or revoked has been copied:
    blacklist every token of its family (all rotated from the same sign-in), so neither the
    copy nor the owner's newer token keeps working; the person's other sign-ins stay.
    Returns how many were revoked: 0 unless `raw_token` is a genuine, used refresh token."""
    try:
        claims = token_backend.decode(raw_token, verify=True)
    except TokenBackendError:
        return 0
    jti = claims.get(jwt_settings.JTI_CLAIM)
    if claims.get("token_type") != "refresh" or not jti:
        return 0
    if not BlacklistedToken.objects.filter(token__jti=jti).exists():
        return 0
    family = claims.get(REFRESH_FAMILY_CLAIM, jti)
    outstanding = OutstandingToken.objects.filter(
        user__pk=claims.get(jwt_settings.USER_ID_CLAIM),
        expires_at__gt=timezone.now(),
        blacklistedtoken__isnull=True,
    )
    members = [token for token in outstanding if _refresh_family(token) == family]
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in members], ignore_conflicts=True
    )
    logger.warning("refresh_token_reused", user_id=claims.get(jwt_settings.USER_ID_CLAIM),
                   revoked=len(members))  # fmt: skip
    return len(members)


def _refresh_family(token: OutstandingToken) -> str | None:
    # Our own stored token: its signature was checked when it was issued.
    claims = jwt.decode(token.token, options={"verify_signature": False})
    return claims.get(REFRESH_FAMILY_CLAIM, token.jti)


@transaction.atomic
def create_organization(*, name: str, slug: str, actor: Actor | None = None) -> Organization:
    """A new organization (platform operators; `actor` None for scripts and the demo)."""
    if actor is not None and not access.is_operator(actor):
        raise PermissionDenied("Only platform operators can create organizations.")
    name, slug = (name or "").strip(), (slug or "").strip().lower()
    if not name:
        raise ValidationError({"name": "Give the organization a name."})
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"The short name “{slug}” is taken."})
    organization = Organization.objects.create(name=name[:200], slug=slug)
    if actor is not None:
        audit.record(AuditAction.ORG_CREATED, actor=actor,
                     organization_id=organization.pk, target=organization,
                     changes={"name": organization.name, "slug": slug})  # fmt: skip
    return organization


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


# --- people and teams (API and admin share these) ---------------------------------------


def _require_manager(actor: Actor) -> None:
    if not access.is_manager(actor) or not actor.organization_id:
        raise PermissionDenied("Only managers and organization admins of an organization can.")


def _members(actor: Actor, member_ids: list[int]) -> list[User]:
    """People of the actor's organization; a foreign or unknown id is refused by name."""
    members = list(access.scope(actor, User.objects.filter(pk__in=member_ids)))
    missing = sorted(set(member_ids) - {member.pk for member in members})
    if missing:
        raise ValidationError({"members": f"No such person in your organization: {missing}."})
    return members


@transaction.atomic
def create_team(*, actor: Actor, name: str, member_ids: list[int] | None = None) -> Team:
    _require_manager(actor)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the team a name."})
    if Team.objects.filter(organization_id=actor.organization_id, name__iexact=name).exists():
        raise ValidationError({"name": f"There is already a team called “{name}”."})
    team = Team.objects.create(organization_id=actor.organization_id, name=name[:200])
    members = _members(actor, member_ids or [])
    team.members.set(members)
    audit.record(AuditAction.TEAM_CREATED, actor=actor, target=team,
                 changes={"name": team.name, "members": sorted(m.pk for m in members)})  # fmt: skip
    return team


@transaction.atomic
def update_team(
    *, actor: Actor, team_id: int, name: str | None = None, member_ids: list[int] | None = None
) -> Team:
    _require_manager(actor)
    team = access.access_or_404(actor, Team.objects.select_for_update(), pk=team_id)
    before = {"name": team.name, "members": sorted(team.members.values_list("pk", flat=True))}
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": "Give the team a name."})
        clash = Team.objects.filter(organization_id=team.organization_id, name__iexact=name)
        if clash.exclude(pk=team.pk).exists():
            raise ValidationError({"name": f"There is already a team called “{name}”."})
        team.name = name[:200]
        team.save(update_fields=["name"])
    if member_ids is not None:
        team.members.set(_members(actor, member_ids))
    after = {"name": team.name, "members": sorted(team.members.values_list("pk", flat=True))}
    if changes := audit.diff(before, after):
        audit.record(AuditAction.TEAM_UPDATED, actor=actor, target=team, changes=changes)
    return team


@transaction.atomic
def delete_team(*, actor: Actor, team_id: int) -> None:
    _require_manager(actor)
    team = access.access_or_404(actor, Team, pk=team_id)
    audit.record(AuditAction.TEAM_DELETED, actor=actor, target=team, changes={"name": team.name})
    team.delete()


def _check_role_change(actor: Actor, role: str, target: User | None) -> None:
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    if role == Role.ADMIN and not access.is_org_admin(actor):
        raise PermissionDenied("Only organization admins can make organization admins.")
    if target is not None and target.role == Role.ADMIN and not access.is_org_admin(actor):
        raise PermissionDenied("Only organization admins can change an organization admin.")


@transaction.atomic
def create_user(
    *,
    actor: Actor,
    email: str,
    full_name: str = "",
    role: str = Role.LEARNER,
    team_ids: list[int] | None = None,
) -> User:
    """Add a person to the actor's organization. They get no password: they choose one
    through the password-reset email the caller sends (see `send_welcome`)."""
    _require_manager(actor)
    _check_role_change(actor, role, None)
    email = (email or "").strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "Someone already uses this email address."})
    teams = list(access.scope(actor, Team.objects.filter(pk__in=team_ids or [])))
    if len(teams) != len(set(team_ids or [])):
        raise ValidationError({"teams": "No such team in your organization."})
    user = User.objects.create_user(
        email, None, full_name=full_name[:200], organization_id=actor.organization_id, role=role
    )
    for team in teams:
        team.members.add(user)
    audit.record(AuditAction.USER_CREATED, actor=actor, target=user,
                 changes={"email": user.email, "role": role})  # fmt: skip
    return user


@transaction.atomic
def update_user(*, actor: Actor, user_id: int, **changes: Any) -> User:
    """Change a person's name, role, active flag or teams (managers; admins for admins)."""
    _require_manager(actor)
    user = access.access_or_404(actor, User.objects.select_for_update(), pk=user_id)
    before = {"role": user.role, "is_active": user.is_active}
    if "role" in changes and changes["role"] != user.role:
        _check_role_change(actor, changes["role"], user)
    elif user.role == Role.ADMIN and not access.is_org_admin(actor):
        raise PermissionDenied("Only organization admins can change an organization admin.")
    if user.pk == actor.pk and (changes.get("is_active") is False or "role" in changes):
        raise ValidationError("You cannot change your own role or deactivate yourself.")
    for name in ("full_name", "role", "is_active"):
        if name in changes:
            setattr(user, name, changes[name])
    user.save()
    if "team_ids" in changes:
        team_ids = changes["team_ids"] or []
        teams = list(access.scope(actor, Team.objects.filter(pk__in=team_ids)))
        if len(teams) != len(set(team_ids)):
            raise ValidationError({"teams": "No such team in your organization."})
        user.teams.set(teams)
    record_user_changes(actor=actor, user=user, before=before)
    on_user_access_changed(
        user,
        deactivated=before["is_active"] and not user.is_active,
        demoted=before["role"] in (Role.MANAGER, Role.ADMIN) and user.role == Role.LEARNER,
    )
    return user


ORGANIZATION_SETTINGS = (
    "name",
    "require_second_factor",
    "managers_see_audit_log",
    "voice_minutes_per_month",
    "avatar_sessions_limit",
    "avatar_minutes_per_month",
)
# Audited when changed, but set by platform operators only (in the admin).
OPERATOR_SETTINGS = KNOWLEDGE_LIMIT_FIELDS


@transaction.atomic
def update_organization(*, actor: Actor, **changes: Any) -> Organization:
    """Change the actor's organization's name and settings (organization admins)."""
    if not access.is_org_admin(actor) or not actor.organization_id:
        raise PermissionDenied("Only organization admins can change the organization.")
    organization = Organization.objects.select_for_update().get(pk=actor.organization_id)
    before = {name: getattr(organization, name) for name in ORGANIZATION_SETTINGS}
    for name, value in changes.items():
        if name in ORGANIZATION_SETTINGS:
            setattr(organization, name, value)
    organization.save()
    record_organization_changes(actor=actor, organization=organization, before=before)
    return organization


def record_organization_changes(
    *, actor: Actor, organization: Organization, before: dict[str, Any]
) -> None:
    after = {name: getattr(organization, name) for name in before}
    if changes := audit.diff(before, after):
        audit.record(AuditAction.ORG_SETTINGS_CHANGED, actor=actor,
                     organization_id=organization.pk, target=organization,
                     changes=changes)  # fmt: skip
    if changes.get("require_second_factor") == [False, True]:
        # Staff API sessions opened with a password alone end; signing in again asks for
        # the code (or sends them to set one up).
        staff = list(organization.users.filter(role__in=[Role.MANAGER, Role.ADMIN]))
        transaction.on_commit(lambda: [revoke_refresh_tokens(user) for user in staff])
