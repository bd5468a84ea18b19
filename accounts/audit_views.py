"""The audit log page for organization admins (and managers where the organization allows
it): filters (actor, action, dates) and CSV."""

from __future__ import annotations

import csv
from datetime import date

from django.apps import apps
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
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
    if filters["since"] and filters["until"] and filters["since"] > filters["until"]:
        filters["problem"] = (
            f"The From date ({filters['since']}) is after the To date ({filters['until']}), "
            "so no event can match: swap them to see that period."
        )
    return events, filters


def _shown(value: object) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(item) for item in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_shown(item)}" for key, item in value.items())
    return str(value)


def change_rows(changes: dict[str, object]) -> list[tuple[str, str]]:
    """An event's changes as (field, text): "old → new" for a change (audit.diff's [old,
    new]), the value as a person reads it otherwise (no Python reprs)."""
    rows = []
    for field, value in (changes or {}).items():
        if isinstance(value, list) and len(value) == 2 and field != "members":
            rows.append((field, f"{_shown(value[0])} → {_shown(value[1])}"))
        else:
            rows.append((field, _shown(value)))
    return rows


def _targets(events: list[AuditEvent], user: object) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, id) -> (name, admin link or "") for the events' targets, one query a type."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    by_type: dict[str, set[str]] = {}
    for event in events:
        if event.target_type and event.target_id:
            by_type.setdefault(event.target_type, set()).add(event.target_id)
    for label, ids in by_type.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        for pk, obj in model._default_manager.in_bulk([i for i in ids if i.isdigit()]).items():
            link = ""
            if getattr(user, "is_staff", False):
                try:
                    link = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change",
                                   args=[pk])  # fmt: skip
                except NoReverseMatch:
                    link = ""
            found[(label, str(pk))] = (str(obj)[:80], link)
    return found


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    events, filters = _filtered(request)
    shown = list(events[:PAGE_SIZE])
    targets = _targets(shown, request.user)
    for event in shown:
        event.change_rows = change_rows(event.changes)
        event.target_name, event.target_link = targets.get(
            (event.target_type, event.target_id), ("", "")
        )
    return render(
        request,
        "accounts/audit_log.html",
        {
            "events": shown,
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
