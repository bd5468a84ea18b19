from django.urls import path

from voice import views

app_name = "voice"
urlpatterns = [path("preview/", views.preview, name="preview")]
