from django.urls import path

from training import api

urlpatterns = [
    path("scenarios/", api.ScenarioListView.as_view(), name="api-scenario-list"),
    path("scenarios/<int:pk>/", api.ScenarioDetailView.as_view(), name="api-scenario-detail"),
    path("assignments/", api.AssignmentListCreateView.as_view(), name="api-assignment-list"),
    path("assignments/<int:pk>/", api.AssignmentDetailView.as_view(), name="api-assignment-detail"),
    path("analytics/summary/", api.AnalyticsSummaryView.as_view(), name="api-analytics-summary"),
    path("sessions/", api.SessionListCreateView.as_view(), name="api-session-list"),
    path("sessions/<int:pk>/", api.SessionDetailView.as_view(), name="api-session-detail"),
    path("sessions/<int:pk>/end/", api.SessionEndView.as_view(), name="api-session-end"),
    path("sessions/<int:pk>/messages/", api.MessageCreateView.as_view(), name="api-message-create"),
    path(
        "sessions/<int:pk>/messages/list/", api.MessageListView.as_view(), name="api-message-list"
    ),
    path("sessions/<int:pk>/evaluation/", api.EvaluationView.as_view(), name="api-evaluation"),
]
