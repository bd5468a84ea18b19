"""Organization notices on the admin's home page: dismissing one."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts import notices


@login_required
@require_POST
def dismiss(request: HttpRequest) -> HttpResponse:
    """Dismiss the organization's open notice of the posted kind (organization admins)."""
    notices.dismiss_notice(actor=request.user, kind=request.POST.get("kind", ""))
    if request.headers.get("HX-Request"):
        return HttpResponse("")  # the notice's card is swapped away
    return redirect("home")
