from django.contrib import admin
from django.urls import include, path

from avatar_adam import health
from training import views as training_views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("knowledge.api_urls")),
    path("knowledge/", include("knowledge.urls")),
    path("", training_views.dashboard, name="home"),
    path("", include("training.urls")),
    path("", include("accounts.urls")),
]
