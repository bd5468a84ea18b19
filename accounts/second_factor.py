"""Two-factor sign-in: TOTP authenticator apps and single-use recovery codes.

The password step signs the user in as usual; `SecondFactorMiddleware` then holds every
page until the second step is done: users with an authenticator go to the code page,
managers and admins of an organization that requires a second factor go to enrolment.
The Django admin's sign-in passes through the same middleware, so it gets the same step.
Wrong codes are reported as failed sign-ins, so they count toward the same lockout
(django-axes) as wrong passwords.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from urllib.parse import quote, urlencode

import segno
from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django_otp import login as otp_login

from accounts import audit
from accounts.encryption import CannotDecrypt
from accounts.lockout import reset_after_sign_in
from accounts.models import (
    RECOVERY_CODE_COUNT,
    AuditAction,
    AuthenticatorDevice,
    RecoveryCode,
    RecoveryCodeDevice,
    User,
    hash_recovery_code,
)
from accounts.services import revoke_refresh_tokens

ISSUER = "AvatarAdam"
VERIFY, ENROL = "verify", "enrol"


def has_second_factor(user: User) -> bool:
    return AuthenticatorDevice.objects.filter(user=user, confirmed=True).exists()


def is_required(user: User) -> bool:
    if user.is_superuser or not user.is_manager or user.organization_id is None:
        return False
    return bool(user.organization.require_second_factor)


def pending_step(user: User) -> str | None:
    """What a password-signed-in user must still do: VERIFY, ENROL or nothing."""
    if not user.is_authenticated or user.is_verified():
        return None
    if has_second_factor(user):
        return VERIFY
    return ENROL if is_required(user) else None


# --- enrolment --------------------------------------------------------------------------


def start_enrolment(user: User) -> AuthenticatorDevice:
    """A fresh unconfirmed authenticator (replacing any earlier unconfirmed one)."""
    AuthenticatorDevice.objects.filter(user=user, confirmed=False).delete()
    return AuthenticatorDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def pending_enrolment(user: User) -> AuthenticatorDevice | None:
    return AuthenticatorDevice.objects.filter(user=user, confirmed=False).first()


def manual_entry_secret(device: AuthenticatorDevice) -> str:
    """The secret as authenticator apps expect it typed: base32, in groups of four."""
    encoded = base64.b32encode(device.secret_bytes()).decode().rstrip("=")
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def provisioning_uri(device: AuthenticatorDevice) -> str:
    secret = base64.b32encode(device.secret_bytes()).decode().rstrip("=")
    label = quote(f"{ISSUER}:{device.user.email}")
    query = urlencode({"secret": secret, "issuer": ISSUER, "digits": 6, "period": 30})
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """The QR code as inline SVG, drawn here: the secret never leaves the server."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#111", light="#fff")


def _new_recovery_codes(user: User) -> list[str]:
    # The device stays (a session verified with a recovery code stays verified); its codes
    # are replaced.
    device = RecoveryCodeDevice.objects.filter(user=user).first()
    if device is None:
        device = RecoveryCodeDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    device.codes.all().delete()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 80 bits
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(device=device, code_hash=hash_recovery_code(code)) for code in codes]
    )
    return codes


def confirm_enrolment(request: HttpRequest, user: User, code: str) -> list[str] | None:
    """Confirm the pending authenticator with its first code; returns the recovery codes
    (to show once) or None when the code is wrong."""
    device = pending_enrolment(user)
    if device is None or not device.verify_token(code):
        return None
    with transaction.atomic():
        AuthenticatorDevice.objects.filter(user=user, confirmed=True).delete()
        device.confirmed = True
        device.confirmed_at = timezone.now()
        device.save(update_fields=["confirmed", "confirmed_at"])
        codes = _new_recovery_codes(user)
        audit.record(AuditAction.OTP_ENABLED, actor=user, target=user)
        # Tokens obtained with the password alone end: the API asks for the code now.
        transaction.on_commit(lambda: revoke_refresh_tokens(user))
    otp_login(request, device)
    return codes


def regenerate_recovery_codes(user: User) -> list[str]:
    with transaction.atomic():
        codes = _new_recovery_codes(user)
        audit.record(AuditAction.RECOVERY_CODES_REGENERATED, actor=user, target=user)
    return codes


def disable(user: User) -> None:
    with transaction.atomic():
        AuthenticatorDevice.objects.filter(user=user).delete()
        RecoveryCodeDevice.objects.filter(user=user).delete()
        audit.record(AuditAction.OTP_DISABLED, actor=user, target=user)
        transaction.on_commit(lambda: revoke_refresh_tokens(user))


def remaining_recovery_codes(user: User) -> int:
    return RecoveryCode.objects.filter(device__user=user).count()


# --- the second step --------------------------------------------------------------------


def unreadable_secret_message(user: User) -> str:
    """When the stored authenticator secret no longer decrypts, what to tell the person."""
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None and isinstance(device.key, CannotDecrypt):
        return (
            f"{device.key.message} Sign in with one of your recovery codes, then set up "
            "your authenticator app again on the two-factor page."
        )
    return ""


def is_locked_out(request: HttpRequest, user: User) -> bool:
    return AxesProxyHandler.is_locked(request, {"username": user.email})


def check_code(request: HttpRequest | None, user: User, code: str) -> tuple[bool, bool]:
    """(accepted, was a recovery code). A wrong code is a failed sign-in for the lockout."""
    code = (code or "").strip()
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None and device.verify_token(code):
        if request is not None and hasattr(request, "session"):
            otp_login(request, device)
        reset_after_sign_in(user.email)
        return True, False
    if any(ch.isalpha() for ch in code):
        recovery = RecoveryCodeDevice.objects.filter(user=user).first()
        if recovery is not None and recovery.verify_token(code):
            audit.record(
                AuditAction.RECOVERY_CODE_USED,
                actor=user,
                target=user,
                changes={"remaining": recovery.remaining()},
            )
            if request is not None and hasattr(request, "session"):
                otp_login(request, recovery)
            reset_after_sign_in(user.email)
            return True, True
    user_login_failed.send(
        sender=__name__,
        credentials={"username": user.email, "reason": "second factor"},
        request=request,
    )
    return False, False


# --- the gate ---------------------------------------------------------------------------


class SecondFactorMiddleware:
    """Hold a password-only session at the second step until it is done."""

    # API calls authenticate with tokens or keys (request.user is anonymous here); a
    # browser's half-signed-in session reaching /api/ (the docs) is held like any page.
    OPEN_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(self.OPEN_PREFIXES)
        ):
            step = pending_step(user)
            if step is not None:
                allowed = {reverse("logout"), reverse("admin:logout")}
                target = reverse("two-factor-verify" if step == VERIFY else "two-factor-setup")
                allowed.add(target)
                if request.path not in allowed:
                    return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
