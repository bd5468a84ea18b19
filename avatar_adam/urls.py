from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authentication import SessionAuthentication
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.api_keys import ApiKeyAuthentication
from avatar_adam import health
from avatar_adam.api_docs import RedocDocs, SwaggerDocs
from training import views as training_views

# The docs pages are read in a browser by signed-in people, so sessions count there too.
DOCS_AUTHENTICATION = [
    JWTAuthentication,
    ApiKeyAuthentication,
    SessionAuthentication,
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("knowledge.api_urls")),
    path("api/v1/", include("training.api_urls")),
    path("api/v1/", include("voice.api_urls")),
    path(
        "api/v1/schema/",
        SpectacularAPIView.as_view(authentication_classes=DOCS_AUTHENTICATION),
        name="api-schema",
    ),
    path(
        "api/v1/docs/",
        SwaggerDocs.as_view(url_name="api-schema", authentication_classes=DOCS_AUTHENTICATION),
        name="api-docs",
    ),
    path(
        "api/v1/redoc/",
        RedocDocs.as_view(url_name="api-schema", authentication_classes=DOCS_AUTHENTICATION),
        name="api-redoc",
    ),
    path("knowledge/", include("knowledge.urls")),
    path("voice/", include("voice.urls")),
    path("", training_views.dashboard, name="home"),
    path("", include("training.urls")),
    path("", include("accounts.urls")),
]

handler400 = "avatar_adam.errors.bad_request"
handler403 = "avatar_adam.errors.permission_denied"
handler404 = "avatar_adam.errors.not_found"
handler500 = "avatar_adam.errors.server_error"
