from django.urls import path

from voice import api

urlpatterns = [
    path("sessions/<int:pk>/voice-ticket/", api.VoiceTicketView.as_view(), name="api-voice-ticket"),
]
