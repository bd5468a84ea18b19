"""The access policy: the one place that answers "may this actor see or do this".

Every view, API view, admin class, consumer and task reads organization data through
`scope()` or `access_or_404()`. Each model that holds organization data registers here
how it reaches its organization and, for learners, how it reaches its owner. A model
that is not registered cannot be scoped: asking is a programming error, not an empty
result, so nothing is ever silently exposed.

Rules:
- platform operators (Django superusers) see everything;
- managers and organization admins see their organization's rows;
- learners see only the rows they own (or none, for manager-only data);
- nobody sees another organization's rows, and a foreign row answers exactly like a
  missing one (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.http import Http404

ModelT = TypeVar("ModelT", bound=Model)

LearnerVisibility = Literal["owner", "all", "none"]


class Actor(Protocol):
    """Who is asking: a signed-in User, or an API key's principal."""

    pk: Any
    is_authenticated: bool
    is_superuser: bool
    role: str
    organization_id: int | None


@dataclass(frozen=True)
class ScopeRule:
    organization_path: str
    owner_path: str | None
    learners: LearnerVisibility
    hidden: dict[str, Any] | None = None  # rows no one but operators sees


_rules: dict[type[Model], ScopeRule] = {}


def register(
    model: type[Model],
    *,
    organization: str = "organization_id",
    owner: str | None = None,
    learners: LearnerVisibility = "owner",
    hidden: dict[str, Any] | None = None,
) -> None:
    """Declare how `model` is scoped.

    `organization` is the lookup path to the organization's id ("pk" for Organization);
    `owner` the lookup path to the owning user ("pk" for the User model itself);
    `learners` whether learners see their own rows, all of their organization's, or none;
    `hidden` a filter for rows only platform operators may see, even in their
    organization (operator accounts placed in one).
    """
    if learners == "owner" and owner is None:
        raise ImproperlyConfigured(f"{model.__name__}: learners='owner' needs an owner path.")
    _rules[model] = ScopeRule(organization, owner, learners, hidden)


def registered_models() -> list[type[Model]]:
    return list(_rules)


def is_operator(actor: Actor | None) -> bool:
    return bool(actor and actor.is_authenticated and actor.is_superuser)


def is_manager(actor: Actor | None) -> bool:
    """Manager or organization admin of some organization (operators count too)."""
    if is_operator(actor):
        return True
    return bool(
        actor
        and actor.is_authenticated
        and actor.organization_id
        and actor.role in ("manager", "admin")
    )


def is_org_admin(actor: Actor | None) -> bool:
    if is_operator(actor):
        return True
    return bool(
        actor and actor.is_authenticated and actor.organization_id and actor.role == "admin"
    )


def can_read_audit_log(actor: Actor | None) -> bool:
    """Organization admins and operators always; managers when their organization allows."""
    if is_org_admin(actor):
        return True
    return bool(
        is_manager(actor)
        and getattr(actor, "organization", None) is not None
        and actor.organization.managers_see_audit_log
    )


def scope(actor: Actor | None, queryset: QuerySet[ModelT]) -> QuerySet[ModelT]:
    """Narrow `queryset` to what `actor` may see. Anonymous actors see nothing."""
    if actor is None or not actor.is_authenticated:
        return queryset.none()
    if actor.is_superuser:
        return queryset
    try:
        rule = _rules[queryset.model]
    except KeyError:
        raise ImproperlyConfigured(
            f"{queryset.model.__name__} is not registered with accounts.access; "
            "register how it is scoped before reading it."
        ) from None
    if not actor.organization_id:
        return queryset.none()
    scoped = queryset.filter(**{rule.organization_path: actor.organization_id})
    if rule.hidden:
        scoped = scoped.exclude(**rule.hidden)
    if actor.role in ("manager", "admin"):
        return scoped
    if rule.learners == "all":
        return scoped
    if rule.learners == "none":
        return scoped.none()
    return scoped.filter(**{rule.owner_path: actor.pk})


def access_or_404(
    actor: Actor | None, queryset: QuerySet[ModelT] | type[ModelT], **lookup: Any
) -> ModelT:
    """Fetch one object through the policy; missing and foreign objects both raise Http404."""
    if isinstance(queryset, type):
        queryset = queryset._default_manager.all()
    try:
        return scope(actor, queryset).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404("Not found.") from None
