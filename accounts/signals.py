"""Sign-ins and failed sign-ins go to the audit log. For a user with a second factor the
password is only the first step: "Signed in" is recorded when the code is accepted
(accounts.two_factor_views.verify)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed

from accounts import audit, lockout
from accounts.models import AuditAction, User


def _logged_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    from accounts.second_factor import has_second_factor

    if has_second_factor(user):
        audit.record(AuditAction.PASSWORD_ACCEPTED, actor=user, target=user)
    else:
        audit.record(AuditAction.LOGIN, actor=user, target=user)
        lockout.reset_after_sign_in(user.email)


def _login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    email = str(credentials.get("email") or credentials.get("username") or "")[:254].lower()
    known = User.objects.filter(email__iexact=email).only("pk", "organization_id").first()
    audit.record(
        AuditAction.LOGIN_FAILED,
        organization_id=known.organization_id if known else None,
        actor_label=email or "unknown",
        changes={"email": email},
    )


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="aa-audit-login")
    user_login_failed.connect(_login_failed, dispatch_uid="aa-audit-login-failed")
