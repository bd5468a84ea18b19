"""Admin for the knowledge base: upload several files at once, watch status, re-ingest.

Uploads, re-ingestion and deletions go through knowledge.services, as the pages and the
API do (the same checks, the same audit events); a refusal is shown as a message.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.admin import OrganizationScopedAdmin
from knowledge import quotas, services
from knowledge.extraction import ACCEPTED_LIST, UnsupportedDocument
from knowledge.models import Document


class DocumentRefused(Exception):
    """The service refused to delete a document; the message says why."""


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(help_text=f"Accepted: {ACCEPTED_LIST}. Several at once is fine.")
    collection = forms.CharField(max_length=100, required=False, help_text="Default: General")


@admin.register(Document)
class DocumentAdmin(OrganizationScopedAdmin):
    list_display = ["title", "collection", "status", "progress", "chunk_count", "page_count",
                    "organization", "created_at"]  # fmt: skip
    list_filter = ["status", "collection", "format", "organization"]
    search_fields = ["title", "original_filename"]
    readonly_fields = [
        "original_filename", "format", "content_type", "size_bytes", "sha256", "status",
        "progress", "error", "page_count", "chunk_count", "embedding_model", "uploaded_by",
        "created_at", "ingested_at",
    ]  # fmt: skip
    fields = ["title", "collection", *readonly_fields]
    actions = ["reingest_selected", "delete_selected_documents"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletes go through the service (files, caches)
        return actions

    def get_urls(self) -> list[URLPattern]:
        upload = path(
            "upload/",
            self.admin_site.admin_view(self.upload_view),
            name="knowledge_document_upload",
        )
        return [upload, *super().get_urls()]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        return HttpResponseRedirect(reverse("admin:knowledge_document_upload"))

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request) or not request.user.organization_id:
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            for uploaded in form.cleaned_data["files"]:
                try:
                    result = services.upload_document(
                        actor=request.user,
                        uploaded_file=uploaded,
                        collection=form.cleaned_data["collection"],
                    )
                except (
                    services.DocumentTooLarge,
                    UnsupportedDocument,
                    quotas.KnowledgeLimitReached,
                    PermissionDenied,
                ) as exc:
                    messages.error(request, f"{uploaded.name}: {exc}")
                    continue
                if result.created:
                    messages.success(request, f"{uploaded.name}: queued for ingestion.")
                else:
                    messages.info(request, f"{uploaded.name}: already in the knowledge base.")
            return HttpResponseRedirect(reverse("admin:knowledge_document_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload documents",
            "form": form,
            "allowances": quotas.allowances(request.user.organization),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/knowledge/document/upload.html", context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except DocumentRefused as refused:  # its transaction rolled back: nothing deleted
            self.message_user(request, str(refused), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:knowledge_document_change", args=[object_id])
            )

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        try:
            services.delete_document(actor=request.user, document_id=obj.pk)
        except PermissionDenied as exc:
            raise DocumentRefused(str(exc) or "You may not delete this document.") from exc

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            self.delete_model(request, document)

    @admin.action(description="Re-ingest selected documents")
    def reingest_selected(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = 0
        for document in queryset:
            try:
                services.reingest_document(actor=request.user, document_id=document.pk)
            except (PermissionDenied, Http404) as exc:
                self.message_user(request, f"{document}: {exc}", messages.ERROR)
                continue
            count += 1
        self.message_user(request, f"Queued {count} document(s) for ingestion.")

    @admin.action(description="Delete selected documents and their passages")
    def delete_selected_documents(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = 0
        for document in queryset:
            try:
                self.delete_model(request, document)
            except (DocumentRefused, Http404) as exc:
                self.message_user(request, f"{document}: {exc}", messages.ERROR)
                continue
            count += 1
        self.message_user(request, f"Deleted {count} document(s).")
