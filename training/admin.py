"""Admin for managers: scenarios with persona and rubric (versioned), assignments, sessions.

Saves and deletes go through training.services, the functions the pages and the API call,
so a change made here is checked, versioned and audited exactly as it is there. When a
service refuses, the form is shown again with its reason (or, for deletions, a message)
and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as confirm_delete_selected
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import OrganizationScopedAdmin
from training import assignments, errors, scenarios, sessions
from training.models import Assignment, RubricItem, Scenario, TrainingSession
from training.voices import avatar_choices, check_avatar_id, voice_choices


class ServiceRefused(Exception):
    """A service refused what the admin asked; `reasons` are for the person asking."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(" ".join(reasons))
        self.reasons = reasons


@contextmanager
def refused_as_admin_errors() -> Iterator[None]:
    """Turn a service's refusal (TrainingError, PermissionDenied, ValidationError) into
    ServiceRefused, which the views below show instead of an error page."""
    try:
        yield
    except ValidationError as exc:
        raise ServiceRefused(list(exc.messages)) from exc
    except (errors.TrainingError, PermissionDenied) as exc:
        raise ServiceRefused([str(exc) or "You may not do this."]) from exc


def adopt(shown: Model, saved: Model) -> None:
    """The admin logs and redirects with the object it built: make it the one the service
    saved (a new version has a new id)."""
    for field in type(saved)._meta.concrete_fields:
        setattr(shown, field.attname, getattr(saved, field.attname))
    shown._state.adding = False


class ServiceAdmin(OrganizationScopedAdmin):
    """An admin whose save_model/save_related/delete_model call services and raise
    ServiceRefused when refused."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            # The view's transaction has rolled back; validate again, with the reason.
            request._service_refusal = refused.reasons  # type: ignore[attr-defined]
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        reasons = getattr(request, "_service_refusal", None)
        if not reasons:
            return form

        class RefusedForm(form):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                super().clean()
                raise ValidationError(reasons)

        return RefusedForm

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceRefused as refused:
            for reason in refused.reasons:
                self.message_user(request, reason, messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id])
            )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (type(self).delete_selected_one_by_one, name, description)
        return actions

    def delete_selected_one_by_one(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> HttpResponse | None:
        """Django's confirmation page, then each deletion through the service; one that is
        refused is reported and the others go ahead."""
        if not request.POST.get("post"):
            return confirm_delete_selected(self, request, queryset)
        deleted = 0
        for obj in queryset:
            try:
                with transaction.atomic():
                    self.log_deletions(request, [obj])
                    self.delete_model(request, obj)
            except ServiceRefused as refused:
                self.message_user(request, f"{obj}: {refused}", messages.ERROR)
            else:
                deleted += 1
        if deleted:
            self.message_user(request, f"Deleted {deleted} of {len(queryset)}.", messages.SUCCESS)
        return None


class RubricItemInline(admin.TabularInline):
    model = RubricItem
    extra = 1
    fields = ["name", "good_looks_like", "weight", "position"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_staff

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission  # type: ignore[assignment]


def rubric_from(formset: BaseInlineFormSet) -> list[dict[str, object]]:
    """The rubric the inline shows after this edit, in position order (for the service,
    which replaces the whole rubric)."""
    kept = []
    for index, form in enumerate(formset.forms):
        if form in formset.deleted_forms or (form.instance.pk is None and not form.has_changed()):
            continue
        data = form.cleaned_data
        kept.append((data.get("position") or 0, index, data))
    return [
        {"name": data["name"], "good_looks_like": data["good_looks_like"], "weight": data["weight"]}
        for _, _, data in sorted(kept, key=lambda item: item[:2])
    ]


def _avatar_id_format(value: str) -> None:
    try:
        check_avatar_id(value)
    except errors.TrainingError as exc:
        raise forms.ValidationError(str(exc)) from None


@admin.register(Scenario)
class ScenarioAdmin(ServiceAdmin):
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
        ("Voice, avatar and model", {"fields": ("voice", "avatar", "avatar_id", "llm_model")}),
    )  # fmt: skip
    actions = ["preview"]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "voice":  # a list, not free text, with a preview of each
            choices = [("", "The default voice"), *voice_choices()]
            previews = format_html_join(
                " · ",
                '<a href="{}?voice={}" target="_blank" rel="noopener">{}</a>',
                (
                    (reverse("voice:preview"), voice_id, label)
                    for voice_id, label in voice_choices()
                ),
            )
            return forms.ChoiceField(
                choices=choices,
                required=False,
                label="Voice",
                help_text=format_html(
                    "How the persona sounds in voice sessions. Listen: {}", previews
                ),
            )
        if db_field.name == "avatar_id":
            return self._avatar_id_field(request)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def _avatar_id_field(self, request: HttpRequest) -> forms.Field:
        """The video avatars of the organization's key, as a list; when LiveAvatar cannot
        be asked (no key, offline), the id typed in, with the reason."""
        label, default = "Video avatar", ("", "The installation's default (LIVEAVATAR_AVATAR_ID)")
        try:
            choices = avatar_choices(getattr(request.user, "organization_id", None))
        except errors.TrainingError as exc:
            return forms.CharField(
                required=False, max_length=100, label=label,
                validators=[_avatar_id_format],
                help_text=f"Used when the face is the video avatar. The list of avatars "
                f"could not be loaded: {exc} Type an avatar id, or leave it empty for the "
                "installation's default.",
            )  # fmt: skip
        return forms.ChoiceField(
            choices=[default, *choices], required=False, label=label,
            help_text="Used when the face is the video avatar: the avatars of your "
            "organization's LiveAvatar key (its own first, then the public ones).",
        )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(is_current=True)

    def save_model(
        self, request: HttpRequest, obj: Scenario, form: forms.ModelForm, change: bool
    ) -> None:
        """Nothing yet: save_related saves the scenario and its rubric in one service call."""

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        rubric_formset = next(fs for fs in formsets if fs.model is RubricItem)
        if change and not form.has_changed() and not rubric_formset.has_changed():
            return
        rubric = rubric_from(rubric_formset) if rubric_formset.has_changed() or not change else None
        fields = form.changed_data if change else list(form.cleaned_data)
        data = {
            name: form.cleaned_data[name] for name in fields if name in scenarios.SCENARIO_FIELDS
        }
        scenario: Scenario = form.instance
        with refused_as_admin_errors():
            if change:
                saved = scenarios.update_scenario(
                    actor=request.user, scenario_id=scenario.pk, data=data, rubric=rubric
                )
            else:
                saved = scenarios.create_scenario(
                    actor=request.user, data=data, rubric=rubric or []
                )
        if "knowledge_documents" in form.changed_data:
            # Not part of the service's fields; set on the version just saved.
            saved.knowledge_documents.set(form.cleaned_data["knowledge_documents"])
        if change and saved.pk != scenario.pk:
            messages.info(
                request,
                f"Your edit is version {saved.version}; version {saved.version - 1} stays as it "
                "was for the sessions that ran it.",
            )
        adopt(scenario, saved)

    def construct_change_message(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        # The service replaced the rubric; the inline formsets saved nothing to describe.
        message = super().construct_change_message(request, form, [], add)
        if not add and any(formset.has_changed() for formset in formsets):
            message.append({"changed": {"fields": ["rubric"]}})
        return message

    def delete_model(self, request: HttpRequest, obj: Scenario) -> None:
        with refused_as_admin_errors():
            scenarios.delete_scenario(actor=request.user, scenario_id=obj.pk)

    @admin.action(description="Preview as a learner")
    def preview(self, request: HttpRequest, queryset: Any) -> HttpResponseRedirect | None:
        scenario = queryset.first()
        if scenario is None:
            return None
        try:
            session = sessions.start_session(
                actor=request.user, scenario_id=scenario.pk, preview=True
            )
        except (errors.TrainingError, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("training:session", args=[session.pk]))


@admin.register(Assignment)
class AssignmentAdmin(ServiceAdmin):
    list_display = ["scenario", "team", "learner", "due_at", "attempts_required", "passing_score"]
    list_filter = ["team"]
    fields = ["scenario", "team", "learner", "due_at", "attempts_required", "passing_score"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # What and to whom is fixed once assigned: withdraw it and assign again instead.
        return ["scenario", "team", "learner"] if obj is not None else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "scenario" and field is not None:
            field.queryset = field.queryset.filter(is_current=True)
        return field

    def save_model(
        self, request: HttpRequest, obj: Assignment, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        with refused_as_admin_errors():
            if change:
                saved = assignments.update_assignment(
                    actor=request.user,
                    assignment_id=obj.pk,
                    **{name: data[name] for name in form.changed_data},
                )
            else:
                saved = assignments.create_assignment(
                    actor=request.user,
                    scenario_id=data["scenario"].pk,
                    team_id=data["team"].pk if data.get("team") else None,
                    learner_id=data["learner"].pk if data.get("learner") else None,
                    due_at=data.get("due_at"),
                    attempts_required=data["attempts_required"],
                    passing_score=data["passing_score"],
                )
        adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Assignment) -> None:
        with refused_as_admin_errors():
            assignments.delete_assignment(actor=request.user, assignment_id=obj.pk)


@admin.register(TrainingSession)
class TrainingSessionAdmin(OrganizationScopedAdmin):
    list_display = ["scenario", "learner", "status", "channel", "started_at", "ended_reason",
                    "score", "conversation"]  # fmt: skip
    list_filter = ["status", "channel", "mode"]
    readonly_fields = [
        "conversation", "score", "transcript", *(f.name for f in TrainingSession._meta.fields)
    ]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("evaluation", "scenario", "learner")

    @admin.display(description="debrief score")
    def score(self, obj: TrainingSession) -> str:
        evaluation = getattr(obj, "evaluation", None)
        overall = getattr(evaluation, "overall", None)
        return "—" if overall is None else f"{overall}/100"

    @admin.display(description="conversation")
    def conversation(self, obj: TrainingSession) -> str:
        """The transcript and debrief, on the session's own page (managers may read it)."""
        return format_html(
            '<a href="{}">Read the conversation and its debrief</a>',
            reverse("training:session", args=[obj.pk]),
        )

    @admin.display(description="transcript")
    def transcript(self, obj: TrainingSession) -> str:
        """Who said what, in order, interrupted turns marked (the page has the rest)."""
        turns = obj.messages.order_by("created_at", "id").values_list("role", "text", "interrupted")
        names = {"persona": obj.scenario.persona_name or "Persona", "learner": "Learner"}
        return format_html(
            '<ol class="admin-transcript">{}</ol>',
            format_html_join(
                "",
                "<li><strong>{}:</strong> {}{}</li>",
                (
                    (names.get(role, role.title()), text, " (interrupted)" if cut else "")
                    for role, text, cut in turns
                ),
            )
            or "—",
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
