"""Admin for managers: scenarios with persona and rubric (versioned), assignments, sessions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from accounts import audit
from accounts.admin import OrganizationScopedAdmin
from training import services
from training.models import Assignment, RubricItem, Scenario, TrainingSession


class RubricItemInline(admin.TabularInline):
    model = RubricItem
    extra = 1
    fields = ["name", "good_looks_like", "weight", "position"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_staff

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission  # type: ignore[assignment]


@admin.register(Scenario)
class ScenarioAdmin(OrganizationScopedAdmin):
    list_display = ["title", "mode", "difficulty", "version", "published", "updated_at"]
    list_filter = ["mode", "published", "difficulty"]
    search_fields = ["title", "summary"]
    inlines = [RubricItemInline]
    filter_horizontal = ["knowledge_documents"]
    readonly_fields = ["version"]
    fieldsets = (
        (None, {"fields": ("title", "summary", "mode", "difficulty", "published", "version")}),
        ("Persona (role-play)", {"fields": (
            "persona_name", "persona_role", "persona_personality", "persona_background",
            "persona_hidden_motivations", "persona_objections", "persona_opening_line",
        )}),
        ("Learning", {"fields": ("learner_objectives", "time_limit_minutes")}),
        ("Knowledge (training mode)", {"fields": ("knowledge_collections", "knowledge_documents")}),
        ("Voice, avatar and model", {"fields": ("voice", "avatar", "llm_model")}),
    )  # fmt: skip
    actions = ["preview"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(is_current=True)

    def save_model(
        self, request: HttpRequest, obj: Scenario, form: forms.ModelForm, change: bool
    ) -> None:
        if change and services.needs_new_version(obj):
            obj.organization_id = obj.organization_id or request.user.organization_id
            new = services.save_new_version(obj, actor=request.user)
            messages.info(
                request,
                f"Sessions already ran on version {new.version - 1}; your edit is version "
                f"{new.version}, and earlier sessions keep the version they ran.",
            )
            return
        if not change:
            obj.created_by = request.user
        was_published = bool(change and Scenario.objects.filter(pk=obj.pk, published=True).exists())
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if obj.published and not was_published:
                audit.record("scenario.published", actor=request.user, target=obj,
                             changes={"title": obj.title, "version": obj.version})  # fmt: skip

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)

    @admin.action(description="Preview as a learner")
    def preview(self, request: HttpRequest, queryset: Any) -> HttpResponseRedirect | None:
        scenario = queryset.first()
        if scenario is None:
            return None
        session = services.start_session(actor=request.user, scenario_id=scenario.pk, preview=True)
        return HttpResponseRedirect(reverse("training:session", args=[session.pk]))


@admin.register(Assignment)
class AssignmentAdmin(OrganizationScopedAdmin):
    list_display = ["scenario", "team", "learner", "due_at", "attempts_required", "passing_score"]
    list_filter = ["team"]
    fields = ["scenario", "team", "learner", "due_at", "attempts_required", "passing_score"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "scenario" and field is not None:
            field.queryset = field.queryset.filter(is_current=True)
        return field

    def save_model(
        self, request: HttpRequest, obj: Assignment, form: forms.ModelForm, change: bool
    ) -> None:
        with transaction.atomic():
            if not change:
                obj.created_by = request.user
            super().save_model(request, obj, form, change)
            if not change:
                assignee = {"team": str(obj.team or ""), "learner": str(obj.learner or "")}
                audit.record(
                    "assignment.created",
                    actor=request.user,
                    target=obj,
                    changes={"scenario": obj.scenario.title, **assignee},
                )


@admin.register(TrainingSession)
class TrainingSessionAdmin(OrganizationScopedAdmin):
    list_display = ["scenario", "learner", "status", "channel", "started_at", "ended_reason"]
    list_filter = ["status", "channel", "mode"]
    readonly_fields = [f.name for f in TrainingSession._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
