from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/token/", api.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/refresh/", api.TokenRefreshRotateView.as_view(), name="api-token-refresh"),
    path("auth/logout/", api.LogoutView.as_view(), name="api-logout"),
    path("auth/me/", api.MeView.as_view(), name="api-me"),
    path("api-keys/", api.ApiKeyListCreateView.as_view(), name="api-key-list"),
    path("api-keys/<int:pk>/", api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("organization/", api.OrganizationView.as_view(), name="api-organization"),
    path("organizations/", api.OrganizationListView.as_view(), name="api-organization-list"),
    path("audit-events/", api.AuditEventListView.as_view(), name="api-audit-event-list"),
    path("teams/", api.TeamListView.as_view(), name="api-team-list"),
    path("teams/<int:pk>/", api.TeamDetailView.as_view(), name="api-team-detail"),
    path("users/", api.UserListView.as_view(), name="api-user-list"),
    path("users/<int:pk>/", api.UserDetailView.as_view(), name="api-user-detail"),
]
