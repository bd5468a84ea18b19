"""Pages for the second factor: the code step after the password, enrolment, and the
page where a user sees, replaces or switches off their second factor."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import audit, second_factor
from accounts.encryption import DecryptionError
from accounts.lockout import lockout_response
from accounts.models import AuditAction

WRONG_CODE = (
    "That code is not right. Enter the 6-digit code your authenticator app shows now, "
    "or one of your recovery codes. Each code works once."
)
WRONG_PASSWORD = "That password is not right."


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return settings.LOGIN_REDIRECT_URL


def _locked(request: HttpRequest) -> HttpResponse:
    logout(request)  # a half-signed-in session ends with the lockout
    return lockout_response(request)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """The second step of sign-in for users with an authenticator."""
    user = request.user
    if not second_factor.has_second_factor(user):
        return redirect(_next_url(request))
    if second_factor.is_locked_out(request, user):
        return _locked(request)
    context = {"next": _next_url(request), "second_factor_pending": True}
    if request.method == "POST":
        accepted, recovery = second_factor.check_code(request, user, request.POST.get("code", ""))
        if accepted:
            if not recovery:  # (a recovery code records "Signed in with a recovery code")
                audit.record(AuditAction.LOGIN, actor=user, target=user)
            if recovery:
                left = second_factor.remaining_recovery_codes(user)
                messages.warning(
                    request,
                    f"You signed in with a recovery code; {left} left. Each works once: "
                    "make new ones on the two-factor page if you are running low.",
                )
            return redirect(context["next"])
        if getattr(request, "axes_locked_out", False):
            return _locked(request)
        context["error"] = second_factor.unreadable_secret_message(user) or WRONG_CODE
        return render(request, "accounts/two_factor_verify.html", context, status=400)
    return render(request, "accounts/two_factor_verify.html", context)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app: QR code and secret, confirmed by a first code."""
    user = request.user
    if second_factor.has_second_factor(user):
        return redirect("two-factor-manage")
    device = second_factor.pending_enrolment(user) or second_factor.start_enrolment(user)
    try:
        uri, secret = (
            second_factor.provisioning_uri(device),
            second_factor.manual_entry_secret(device),
        )
    except DecryptionError:  # a pending secret that no longer decrypts: start afresh
        device = second_factor.start_enrolment(user)
        uri, secret = (
            second_factor.provisioning_uri(device),
            second_factor.manual_entry_secret(device),
        )
    context = {
        "next": _next_url(request),
        "qr_svg": second_factor.qr_svg(uri),
        "secret": secret,
        "required": second_factor.is_required(user),
        "second_factor_pending": second_factor.is_required(user),
    }
    if request.method == "POST":
        codes = second_factor.confirm_enrolment(request, user, request.POST.get("code", ""))
        if codes is None:
            context["error"] = (
                "That code does not match. Check that your app shows AvatarAdam and the "
                "device's clock is right, then enter the code it shows now."
            )
            return render(request, "accounts/two_factor_setup.html", context, status=400)
        return render(
            request,
            "accounts/two_factor_codes.html",
            {"codes": codes, "next": context["next"], "just_enrolled": True},
        )
    return render(request, "accounts/two_factor_setup.html", context)


def _password_ok(request: HttpRequest) -> bool:
    if request.user.check_password(request.POST.get("password", "")):
        return True
    user_login_failed.send(
        sender=__name__,
        credentials={"username": request.user.email, "reason": "password re-entry"},
        request=request,
    )
    return False


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def manage(request: HttpRequest) -> HttpResponse:
    """See the second factor; replace the recovery codes or switch it off (password)."""
    user = request.user
    context = {
        "enrolled": second_factor.has_second_factor(user),
        "required": second_factor.is_required(user),
        "remaining": second_factor.remaining_recovery_codes(user),
    }
    if request.method == "POST":
        action = request.POST.get("action")
        if action not in ("disable", "regenerate") or not context["enrolled"]:
            context["error"] = "Choose what to do with your second factor."
            return render(request, "accounts/two_factor_manage.html", context, status=400)
        if not _password_ok(request):
            if getattr(request, "axes_locked_out", False):
                return _locked(request)
            context["error"] = WRONG_PASSWORD
            return render(request, "accounts/two_factor_manage.html", context, status=400)
        if action == "regenerate":
            codes = second_factor.regenerate_recovery_codes(user)
            return render(
                request,
                "accounts/two_factor_codes.html",
                {"codes": codes, "next": reverse("two-factor-manage")},
            )
        second_factor.disable(user)
        if context["required"]:
            # Required for this role: the next page is enrolment of the new authenticator.
            messages.info(request, "Your old authenticator is removed. Set up the new one now.")
            return redirect("two-factor-setup")
        messages.success(request, "Two-factor sign-in is off.")
        return redirect("two-factor-manage")
    return render(request, "accounts/two_factor_manage.html", context)
