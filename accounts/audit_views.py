"""The audit log page for organization admins (and managers where the organization allows
it): filters (actor, action, dates) and CSV."""

from __future__ import annotations

import csv
from datetime import date

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import access, audit
from accounts.models import AuditEvent

PAGE_SIZE = 200


def _filtered(request: HttpRequest) -> tuple[QuerySet[AuditEvent], dict[str, str]]:
    """Events the caller may see, narrowed by the query string (never by an organization id:
    the organization always comes from the caller)."""
    if not access.can_read_audit_log(request.user):
        raise PermissionDenied(
            "Only organization admins (and managers, where the organization allows it) "
            "can read the audit log."
        )
    events = access.scope(request.user, AuditEvent.objects.all())
    filters = {
        key: request.GET.get(key, "").strip() for key in ("actor", "action", "since", "until")
    }
    if filters["actor"]:
        events = events.filter(actor_label__icontains=filters["actor"])
    if filters["action"] in audit.registered_actions():
        events = events.filter(action=filters["action"])
    for key, lookup in (("since", "created_at__date__gte"), ("until", "created_at__date__lte")):
        try:
            if filters[key]:
                events = events.filter(**{lookup: date.fromisoformat(filters[key])})
        except ValueError:
            filters[key] = ""  # an unreadable date filters nothing
    return events, filters


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    events, filters = _filtered(request)
    return render(
        request,
        "accounts/audit_log.html",
        {
            "events": events[:PAGE_SIZE],
            "filters": filters,
            "actions": audit.action_choices(),
            "query": request.GET.urlencode(),
        },
    )


@login_required
@require_GET
def audit_log_csv(request: HttpRequest) -> HttpResponse:
    events, _ = _filtered(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    writer = csv.writer(response)
    writer.writerow(["time", "actor", "action", "target_type", "target_id", "changes", "ip",
                     "request_id"])  # fmt: skip
    for event in events.iterator():
        writer.writerow([
            event.created_at.isoformat(), _cell(event.actor_label), event.action,
            event.target_type, event.target_id, _cell(str(event.changes)), event.ip or "",
            event.request_id,
        ])  # fmt: skip
    return response


def _cell(value: str) -> str:
    # A cell starting with = + - @ would run as a formula in a spreadsheet.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value
