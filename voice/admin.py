"""Managers read their organization's hosted avatar sessions and the minutes each used."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from accounts import access
from accounts.admin import ReadOnlyAdmin
from voice.models import AvatarSession


@admin.register(AvatarSession)
class AvatarSessionAdmin(ReadOnlyAdmin):
    """Read-only: written by the calls; the month's total is what the budget counts."""

    list_display = ["started_at", "learner", "provider", "minutes", "ended_at", "ended_reason"]
    list_filter = ["provider"]
    date_hierarchy = "started_at"
    list_select_related = ["session__learner"]

    @admin.display(description="learner", ordering="session__learner__email")
    def learner(self, avatar: AvatarSession) -> str:
        return avatar.session.learner.email

    @admin.display(description="minutes", ordering="seconds")
    def minutes(self, avatar: AvatarSession) -> str:
        return f"{avatar.seconds / 60:.1f}"

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return [field.name for field in AvatarSession._meta.fields]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.is_manager(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_manager(request.user)
