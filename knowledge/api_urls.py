from django.urls import path

from knowledge import api

urlpatterns = [
    path("knowledge/documents/", api.DocumentListCreateView.as_view(), name="api-document-list"),
    path(
        "knowledge/documents/<int:pk>/",
        api.DocumentDetailView.as_view(),
        name="api-document-detail",
    ),
    path(
        "knowledge/documents/<int:pk>/reingest/",
        api.DocumentReingestView.as_view(),
        name="api-document-reingest",
    ),
    path("knowledge/search/", api.SearchView.as_view(), name="api-knowledge-search"),
]
