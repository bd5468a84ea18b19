from django.urls import path

from training import passage_views, views

app_name = "training"
urlpatterns = [
    path("scenarios/", views.library, name="library"),
    path("scenarios/<int:scenario_id>/start/", views.start, name="start"),
    path("sessions/", views.history, name="history"),
    path("sessions/<int:session_id>/", views.session_page, name="session"),
    path("sessions/<int:session_id>/messages/", views.post_message, name="post-message"),
    path(
        "sessions/<int:session_id>/messages/<int:message_id>/stream/",
        views.reply_stream,
        name="reply-stream",
    ),
    path(
        "sessions/<int:session_id>/messages/<int:message_id>/sources/<int:number>/",
        passage_views.cited_passage,
        name="cited-passage",
    ),
    path("sessions/<int:session_id>/end/", views.end, name="end"),
    path("sessions/<int:session_id>/debrief/", views.debrief, name="debrief"),
]
