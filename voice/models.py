"""A voice call: one WebSocket connection carrying a training session's conversation.

Rows give the per-user cap on concurrent calls (`last_seen_at` is refreshed while the call
lives, so a call lost with its process stops counting within a minute) and the
organization's monthly minutes (`seconds`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import Organization
from training.models import TrainingSession


class VoiceCall(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(
        TrainingSession, on_delete=models.CASCADE, related_name="voice_calls"
    )
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(default=0)
    close_code = models.PositiveIntegerField(null=True, blank=True)
    ended_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["learner", "ended_at"]),
            models.Index(fields=["organization", "started_at"]),
        ]

    def __str__(self) -> str:
        return f"Voice call {self.pk} of session {self.session_id}"


class AvatarSession(models.Model):
    """A hosted avatar session (billed by the provider per minute) opened for a call:
    the organization's cap on sessions at once, its monthly minutes, and the sweeper
    that stops sessions a lost process left open (`voice.avatar.usage`)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(
        TrainingSession, on_delete=models.CASCADE, related_name="avatar_sessions"
    )
    call = models.ForeignKey(
        VoiceCall, on_delete=models.SET_NULL, null=True, blank=True, related_name="avatars"
    )
    provider = models.CharField(max_length=40)
    provider_session_id = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(default=0)
    ended_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "ended_at"]),
            models.Index(fields=["organization", "started_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.provider} avatar of session {self.session_id}"
