"""Django admin, scoped by the access policy.

Managers and organization admins are staff (not superusers): they see and edit only
their organization's rows. Nobody but a platform operator can make a superuser, move a
user to another organization, or see another organization's objects.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import ForeignKey, ManyToManyField, Model, QuerySet
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from accounts import access, audit, services, usage
from accounts.encryption import CannotDecrypt
from accounts.models import (
    KNOWLEDGE_LIMIT_FIELDS,
    ApiKey,
    AuditEvent,
    Organization,
    ProviderCredential,
    Role,
    Team,
    User,
)
from core.endpoints import check_provider_endpoint

admin.site.site_header = "AvatarAdam administration"
admin.site.site_title = "AvatarAdam admin"
admin.site.index_title = "Your organization"
admin.site.unregister(Group)


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Base for every admin of organization data: querysets, choices and saves are scoped.

    Permissions come from the role, not Django's per-model permission table: managers
    and organization admins manage their organization; learners never reach the admin.
    """

    organization_field = "organization"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return access.scope(request.user, super().get_queryset(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.is_manager(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_manager(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return access.is_manager(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_manager(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_manager(request.user)

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        field = self.organization_field
        if access.is_operator(request.user) or not field:
            return form
        organization_id = request.user.organization_id

        class OrganizationForm(form):  # type: ignore[misc, valid-type]
            """The organization is not on the form, so Django would skip the uniqueness
            checks that include it (and the database would answer with a 500): set it
            before validation and keep those checks."""

            def _get_validation_exclusions(self) -> set[str]:
                return set(super()._get_validation_exclusions()) - {field}

            def _post_clean(self) -> None:
                setattr(self.instance, f"{field}_id", organization_id)
                super()._post_clean()

        return OrganizationForm

    def get_exclude(self, request: HttpRequest, obj: Model | None = None) -> Any:
        excluded = list(super().get_exclude(request, obj) or [])
        if not access.is_operator(request.user) and self.organization_field:
            excluded.append(self.organization_field)
        return excluded

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        if not access.is_operator(request.user) and self.organization_field in filters:
            filters.remove(self.organization_field)
        return filters

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and db_field.related_model in access.registered_models():
            field.queryset = access.scope(request.user, field.queryset)
        return field

    def formfield_for_manytomany(
        self, db_field: ManyToManyField, request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField | None:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if field is not None and db_field.related_model in access.registered_models():
            field.queryset = access.scope(request.user, field.queryset)
        return field

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        if not access.is_operator(request.user) and self.organization_field:
            setattr(obj, f"{self.organization_field}_id", request.user.organization_id)
        super().save_model(request, obj, form, change)


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    organization_field = ""

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        readonly = [*super().get_readonly_fields(request, obj), "current_use"]
        if not access.is_operator(request.user):
            readonly += KNOWLEDGE_LIMIT_FIELDS  # the platform's limits: operators set them
        return readonly

    @admin.display(description="current use")
    def current_use(self, obj: Organization) -> str:
        if obj.pk is None:
            return "—"
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            ((line.label, line.used_display, line.limit_display)
             for line in usage.allowances_of(obj)),
        )  # fmt: skip
        return format_html(
            "<table><thead><tr><th>What</th><th>In use</th><th>Limit</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return access.is_operator(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_operator(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_org_admin(request.user)

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        previous = Organization.objects.filter(pk=obj.pk).first() if change else None
        with transaction.atomic():
            super(OrganizationScopedAdmin, self).save_model(request, obj, form, change)
            if previous is not None:
                services.record_organization_changes(
                    actor=request.user,
                    organization=obj,
                    before={
                        name: getattr(previous, name)
                        for name in (*services.ORGANIZATION_SETTINGS, *services.OPERATOR_SETTINGS)
                    },
                )


class ProviderCredentialForm(forms.ModelForm):
    """The key is write-only: typed in, never shown back; empty keeps the saved one."""

    base_url = forms.URLField(
        label="Endpoint",
        required=False,
        assume_scheme="https",
        help_text="Leave empty for the provider's default endpoint.",
    )

    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the saved key.",
    )

    class Meta:
        model = ProviderCredential
        fields = ["organization", "service", "base_url", "api_key"]
        help_texts = {
            "service": "Today the language model uses the organization's key; speech and "
            "avatar keys are kept for the voice and avatar features.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saved_key = self.instance.api_key if self.instance.pk else ""
        self.initial["api_key"] = ""

    def clean_base_url(self) -> str:
        url = self.cleaned_data.get("base_url", "")
        if url:
            check_provider_endpoint(url)
        return url

    def clean_api_key(self) -> Any:
        value = self.cleaned_data.get("api_key", "")
        if value:
            return value
        if self.saved_key:
            return self.saved_key  # unchanged (even when it cannot be decrypted)
        raise forms.ValidationError("Enter the provider's API key.")


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(OrganizationScopedAdmin):
    """Organization admins keep their own provider keys (LLM, speech, avatar)."""

    form = ProviderCredentialForm
    list_display = ["service", "organization", "base_url", "key_status", "updated_by", "updated_at"]
    list_filter = ["service", "organization"]
    readonly_fields = ["key_status", "updated_by", "updated_at"]
    actions = ["test_connection"]

    @admin.action(description="Test connection (one cheap read with the saved key)")
    def test_connection(self, request: HttpRequest, queryset: Any) -> None:
        from accounts import connection_tests

        for credential in queryset:
            worked, message = connection_tests.test_key(credential)
            level = messages.SUCCESS if worked else messages.ERROR
            self.message_user(request, f"{credential} ({credential.organization}): {message}",
                              level)  # fmt: skip

    @admin.display(description="key")
    def key_status(self, obj: ProviderCredential) -> str:
        if isinstance(obj.api_key, CannotDecrypt):
            return str(obj.api_key)
        return "saved (hidden)" if obj.api_key else "not set"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.is_org_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_org_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return access.is_org_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_org_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_org_admin(request.user)

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        obj.updated_by = request.user
        fields = ("service", "base_url")
        before = ProviderCredential.objects.filter(pk=obj.pk).values(*fields).first() or {}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            changes: dict[str, Any] = audit.diff(
                before, {name: getattr(obj, name) for name in fields}
            )
            if form.cleaned_data.get("api_key") != form.saved_key:
                changes["api_key"] = "changed"  # recorded as changed, redacted by audit
            services.record_provider_key_change(request.user, obj, changes, created=not change)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            services.record_provider_key_change(request.user, obj, {}, deleted=True)
            super().delete_model(request, obj)


@admin.register(Team)
class TeamAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]
    filter_horizontal = ["members"]


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(OrganizationScopedAdmin, DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = ["email", "full_name", "organization", "role", "is_active", "last_login"]
    list_filter = ["organization", "role", "is_active"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["last_login", "date_joined"]
    operator_fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "organization", "role", "is_active")}),
        ("Platform", {"fields": ("is_superuser",)}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    manager_fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "role", "is_active")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "role", "password1", "password2"),
            },
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> Any:
        if obj is None:
            fieldsets = self.add_fieldsets
            if access.is_operator(request.user):
                fieldsets = (
                    (None, {"classes": ("wide",), "fields": (
                        "email", "full_name", "organization", "role", "password1", "password2",
                    )}),
                )  # fmt: skip
            return fieldsets
        return (
            self.operator_fieldsets if access.is_operator(request.user) else self.manager_fieldsets
        )

    def get_exclude(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return []  # fieldsets decide what is shown

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "role" and not access.is_org_admin(request.user):
            # Managers may make learners and managers, never organization admins.
            kwargs["choices"] = [
                (Role.LEARNER, Role.LEARNER.label),
                (Role.MANAGER, Role.MANAGER.label),
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        # A manager cannot edit an organization admin; only admins and operators can.
        if (
            isinstance(obj, User)
            and obj.role == Role.ADMIN
            and not access.is_org_admin(request.user)
        ):
            return False
        return True

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.is_org_admin(request.user) and obj != request.user

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        previous = User.objects.filter(pk=obj.pk).first() if change else None
        if not access.is_operator(request.user):
            obj.is_superuser = previous.is_superuser if previous else False
            obj.organization_id = request.user.organization_id
            if obj.role == Role.ADMIN and not access.is_org_admin(request.user):
                obj.role = previous.role if previous else Role.LEARNER
        with transaction.atomic():
            super(OrganizationScopedAdmin, self).save_model(request, obj, form, change)
            if previous is not None:
                services.record_user_changes(
                    actor=request.user,
                    user=obj,
                    before={"role": previous.role, "is_active": previous.is_active},
                )
        if previous is not None:
            was_staff = previous.role in (Role.MANAGER, Role.ADMIN)
            services.on_user_access_changed(
                obj,
                deactivated=previous.is_active and not obj.is_active,
                demoted=was_staff and obj.role == Role.LEARNER,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationScopedAdmin):
    list_display = [
        "name",
        "prefix",
        "organization",
        "role",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organization", "role"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "role", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A key belongs to the creator's organization; operators have none of their own.
        return access.is_manager(request.user) and bool(request.user.organization_id)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # keys are created and revoked, never edited

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        created = services.create_api_key(actor=request.user, name=obj.name, role=obj.role)
        obj.pk = created.api_key.pk
        messages.warning(
            request,
            f"Copy this key now; it will not be shown again: {created.full_key}",
        )

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.revoke_api_key(actor=request.user, api_key_id=api_key.pk)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class AuditActionFilter(admin.SimpleListFilter):
    """The registered actions, by label (the field has no database choices)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Any:
        return audit.action_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> Any:
        return queryset.filter(action=self.value()) if self.value() else queryset


class ReadOnlyAdmin(OrganizationScopedAdmin):
    """Rows the app writes (audit events, usage records): read, never added, changed or
    deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only; organization admins see their organization's events, operators all."""

    list_display = ["created_at", "actor_label", "action_label", "target_type", "target_id",
                    "ip"]  # fmt: skip
    list_filter = [AuditActionFilter]
    search_fields = ["actor_label", "target_id", "request_id"]
    date_hierarchy = "created_at"

    @admin.display(description="action", ordering="action")
    def action_label(self, event: AuditEvent) -> str:
        return event.get_action_display()

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        names = [field.name for field in AuditEvent._meta.fields]
        return [*names[: names.index("action") + 1], "action_label",
                *names[names.index("action") + 1 :]]  # fmt: skip

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.can_read_audit_log(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return access.can_read_audit_log(request.user)
