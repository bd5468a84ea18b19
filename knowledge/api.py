"""REST API of the knowledge base: documents and search, for managers and API keys."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from accounts.api import IsManager
from core.filtering import MAX_ID, FilteredList, UtcDateTimeFilter
from core.idempotency import idempotent
from core.pagination import PagePagination
from knowledge import services
from knowledge.models import Document, DocumentFormat, DocumentStatus
from knowledge.retrieval import MAX_QUERY_CHARS, KnowledgeScope, retrieve_passages


class DocumentSerializer(serializers.ModelSerializer):
    status_label = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = Document
        fields = [
            "id", "title", "original_filename", "format", "content_type", "size_bytes",
            "sha256", "collection", "status", "status_label", "progress", "error",
            "page_count", "chunk_count", "created_at", "updated_at", "ingested_at",
        ]  # fmt: skip
        read_only_fields = fields


class UploadedDocumentSerializer(DocumentSerializer):
    duplicate = serializers.BooleanField(help_text="True when the same file was already there.")

    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "duplicate"]
        read_only_fields = fields


class DocumentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DocumentStatus.choices)
    format = django_filters.ChoiceFilter(choices=DocumentFormat.choices)
    collection = django_filters.CharFilter()
    title = django_filters.CharFilter(lookup_expr="icontains")
    uploaded_since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Document
        fields = ["status", "format", "collection", "title", "uploaded_since"]


class DocumentListCreateView(FilteredList, ListAPIView):
    """List the organization's documents, or upload one (answers at once, 202 queued)."""

    permission_classes = [IsManager]
    parser_classes = [MultiPartParser]
    serializer_class = DocumentSerializer
    pagination_class = PagePagination
    filterset_class = DocumentFilter
    ordering_fields = ["created_at", "title", "size_bytes", "status"]

    def get_queryset(self):  # noqa: ANN201 - a queryset
        return access.scope(self.request.user, Document.objects.all())

    @extend_schema_serializer(component_name="DocumentUploadRequest")
    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(allow_empty_file=True)
        title = serializers.CharField(max_length=300, required=False, allow_blank=True)
        collection = serializers.CharField(max_length=100, required=False, allow_blank=True)

    @extend_schema(operation_id="documents_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=InputSerializer,
        responses={202: UploadedDocumentSerializer, 200: UploadedDocumentSerializer},
        summary="Upload a document (answers at once; ingestion is queued)",
        description="Refused with 413 when the file is over DOCUMENT_MAX_BYTES, and with "
        "409 `knowledge_limit_reached` when it does not fit in the organization's "
        "knowledge-base limits (stored bytes, documents). A document that would go over "
        "the organization's passage limit is accepted here and fails at ingestion with "
        "the reason in `error`.",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def upload() -> tuple[Response, Any]:
            result = services.upload_document(
                actor=request.user,
                uploaded_file=data.validated_data["file"],
                title=data.validated_data.get("title", ""),
                collection=data.validated_data.get("collection", ""),
            )
            body = DocumentSerializer(result.document).data
            body["duplicate"] = not result.created
            code = status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK
            return Response(body, status=code), body

        return idempotent(request, upload)


class DocumentDetailView(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=DocumentSerializer)
    def get(self, request: Request, pk: int) -> Response:
        document = access.access_or_404(request.user, Document, pk=pk)
        return Response(DocumentSerializer(document).data)

    @extend_schema(responses={204: None}, summary="Delete a document and its passages")
    def delete(self, request: Request, pk: int) -> Response:
        services.delete_document(actor=request.user, document_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentReingestView(APIView):
    permission_classes = [IsManager]

    @extend_schema(request=None, responses={202: DocumentSerializer},
                   summary="Queue a document's ingestion again")  # fmt: skip
    def post(self, request: Request, pk: int) -> Response:
        document = services.reingest_document(actor=request.user, document_id=pk)
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


class PassageSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    heading_path = serializers.CharField(allow_blank=True)
    text = serializers.CharField()
    snippet_html = serializers.CharField()
    score = serializers.FloatField()
    vector_rank = serializers.IntegerField(allow_null=True)
    text_rank = serializers.IntegerField(allow_null=True)


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    passages = PassageSerializer(many=True)


class SearchView(APIView):
    """Search the organization's knowledge base; passages come with where they are from."""

    permission_classes = [IsManager]

    @extend_schema_serializer(component_name="SearchRequest")
    class InputSerializer(serializers.Serializer):
        query = serializers.CharField(max_length=MAX_QUERY_CHARS, trim_whitespace=True)
        limit = serializers.IntegerField(min_value=1, max_value=20, default=5)
        mode = serializers.ChoiceField(choices=["hybrid", "vector", "text"], default="hybrid")
        collections = serializers.ListField(
            child=serializers.CharField(max_length=100), required=False, default=list
        )
        document_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
            required=False,
            default=list,
        )

    @extend_schema(request=InputSerializer, responses=SearchResultSerializer,
                   summary="Search the knowledge base")  # fmt: skip
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values: dict[str, Any] = data.validated_data
        document_ids = values["document_ids"]
        if document_ids:
            # Ids inside the payload go through the policy too: a foreign id is a 400.
            visible = set(
                access.scope(
                    request.user, Document.objects.filter(pk__in=document_ids)
                ).values_list("pk", flat=True)
            )
            unknown = sorted(set(document_ids) - visible)
            if unknown:
                raise ValidationError({"document_ids": [f"Unknown document ids: {unknown}."]})
        passages = retrieve_passages(
            organization_id=request.user.organization_id,
            query=values["query"],
            scope=KnowledgeScope(tuple(values["collections"]), tuple(document_ids)),
            limit=values["limit"],
            mode=values["mode"],
        )
        return Response(
            {"query": values["query"], "passages": PassageSerializer(passages, many=True).data}
        )
