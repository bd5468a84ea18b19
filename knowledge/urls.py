from django.urls import path

from knowledge import views

app_name = "knowledge"
urlpatterns = [
    path("", views.documents, name="documents"),
    path("upload/", views.upload, name="upload"),
    path("search/", views.search, name="search"),
    path("events/", views.document_events, name="events"),
    path("documents/<int:pk>/row/", views.document_row, name="document-row"),
    path("documents/<int:pk>/reingest/", views.reingest, name="reingest"),
    path("documents/<int:pk>/delete/", views.delete, name="delete"),
    path("documents/<int:pk>/download/", views.download, name="download"),
]
