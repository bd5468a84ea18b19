"""Scenarios (versioned), rubrics, assignments, training sessions, messages and debriefs."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Organization, Team
from knowledge.models import Document


class ScenarioMode(models.TextChoices):
    ROLEPLAY = "roleplay", "Role-play with a persona"
    TRAINING = "training", "Questions to a trainer (from the knowledge base)"


class ScenarioQuerySet(models.QuerySet["Scenario"]):
    def current(self) -> ScenarioQuerySet:
        return self.filter(is_current=True)

    def published(self) -> ScenarioQuerySet:
        return self.filter(is_current=True, published=True)


class ScenarioAvatar(models.TextChoices):
    """The persona's face in voice sessions (voice/avatar/; templates/voice/avatar_face.html).
    "" follows AVATAR_PROVIDER; "drawn:<look>" is the drawn face in that look (never a
    hosted one); "hosted" asks for LiveAvatar; "none" shows no face."""

    DEFAULT = "", "The installation's default face"
    DRAWN_DEEP = "drawn:deep", "Drawn face: dark skin, black hair, green top"
    DRAWN_WARM = "drawn:warm", "Drawn face: tan skin, auburn hair, red top"
    DRAWN_SILVER = "drawn:silver", "Drawn face: light skin, grey hair, charcoal top"
    HOSTED = "hosted", "Video avatar (LiveAvatar)"
    NONE = "none", "No face"


class Scenario(models.Model):
    """One version of a scenario. Editing a published scenario creates a new version.

    All versions of one scenario share `family`; exactly one of them `is_current`.
    Sessions point at the version they ran, so their transcript and grading stay true to it.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="scenarios"
    )
    family = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    is_current = models.BooleanField(default=True, editable=False)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True, help_text="What the learner sees before starting.")
    mode = models.CharField(
        max_length=16, choices=ScenarioMode.choices, default=ScenarioMode.ROLEPLAY
    )
    difficulty = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    persona_name = models.CharField(max_length=120, blank=True)
    persona_role = models.CharField(max_length=200, blank=True)
    persona_personality = models.TextField(blank=True)
    persona_background = models.TextField(blank=True)
    persona_hidden_motivations = models.TextField(
        blank=True, help_text="What the persona really wants; never told to the learner."
    )
    persona_objections = models.TextField(
        blank=True, help_text="Typical objections, one per line, raised in order."
    )
    persona_opening_line = models.TextField(blank=True)
    learner_objectives = models.TextField(blank=True, help_text="One objective per line.")
    knowledge_collections = ArrayField(
        models.CharField(max_length=100), default=list, blank=True,
        help_text="Training mode searches these collections (empty and no documents: all).",
    )  # fmt: skip
    knowledge_documents = models.ManyToManyField(Document, blank=True, related_name="+")
    voice = models.CharField(max_length=100, blank=True)
    avatar = models.CharField(
        max_length=100, blank=True, choices=ScenarioAvatar.choices,
        help_text="The persona's face in voice sessions: the installation's default (the "
        "drawn face, or the video avatar where AVATAR_PROVIDER says so), a drawn face of "
        "another look, the video avatar (LiveAvatar), or none.",
    )  # fmt: skip
    avatar_id = models.CharField(
        "video avatar", max_length=100, blank=True,
        help_text="Which LiveAvatar avatar plays the persona when the face is the video "
        "avatar, from the list of the organization's key; empty: the installation's "
        "LIVEAVATAR_AVATAR_ID.",
    )  # fmt: skip
    llm_model = models.CharField(
        max_length=120, blank=True,
        help_text="Chat model for this scenario (e.g. anthropic/claude-3.5-sonnet on "
        "OpenRouter); empty: the default LLM_MODEL.",
    )  # fmt: skip
    time_limit_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(240)]
    )
    published = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScenarioQuerySet.as_manager()

    class Meta:
        ordering = ["title", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["family", "version"], name="scenario_family_version"),
            models.UniqueConstraint(
                fields=["family"], condition=models.Q(is_current=True), name="scenario_one_current"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"

    @property
    def objections(self) -> list[str]:
        return [line.strip() for line in self.persona_objections.splitlines() if line.strip()]

    @property
    def objectives(self) -> list[str]:
        return [line.strip() for line in self.learner_objectives.splitlines() if line.strip()]

    @property
    def is_roleplay(self) -> bool:
        return self.mode == ScenarioMode.ROLEPLAY


class RubricItem(models.Model):
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="rubric_items")
    name = models.CharField(max_length=120)
    good_looks_like = models.TextField(help_text="What a strong answer does, in plain words.")
    weight = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class Assignment(models.Model):
    """A scenario given to a team or to one learner."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # The version assigned; learners always get the family's current version.
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="assignments")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    attempts_required = models.PositiveSmallIntegerField(default=1)
    passing_score = models.PositiveSmallIntegerField(
        default=70, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(team__isnull=False, learner__isnull=True)
                | models.Q(team__isnull=True, learner__isnull=False),
                name="assignment_has_one_assignee",
                violation_error_message="Assign to a team or to a learner (exactly one of them).",
            )
        ]

    def __str__(self) -> str:
        return f"{self.scenario.title} → {self.team or self.learner}"


class Channel(models.TextChoices):
    TEXT = "text", "Text"
    VOICE = "voice", "Voice"


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"
    ABANDONED = "abandoned", "Abandoned"


class ReminderKind(models.TextChoices):
    ASSIGNED = "assigned", "New assignment"
    DUE_SOON = "due_soon", "Due soon"
    OVERDUE = "overdue", "Overdue"


class AssignmentReminder(models.Model):
    """One message to one learner about one assignment (training/reminders.py): at most one
    of each kind, so running the job again sends nothing twice."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="+")
    learner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="+")  # fmt: skip
    kind = models.CharField(max_length=10, choices=ReminderKind.choices)
    emailed = models.BooleanField(default=False)  # False: only the home page shows it
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "learner", "kind"], name="one_reminder_of_a_kind"
            )
        ]
        indexes = [models.Index(fields=["learner", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: assignment {self.assignment_id} to {self.learner_id}"


class TrainingSession(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_sessions"
    )
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="sessions")
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    mode = models.CharField(max_length=16, choices=ScenarioMode.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.TEXT)
    status = models.CharField(
        max_length=12, choices=SessionStatus.choices, default=SessionStatus.ACTIVE
    )
    is_preview = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=32, blank=True)
    memory_summary = models.TextField(blank=True)
    summarized_through = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["learner", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.scenario.title} — {self.learner}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self.expires_at:
            minutes = self.scenario.time_limit_minutes if self.scenario_id else 15
            self.expires_at = self.started_at + timedelta(minutes=minutes)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def is_active(self) -> bool:
        return self.status == SessionStatus.ACTIVE

    @property
    def time_left_text(self) -> str:
        """What is left of the time limit, "m:ss" (what the page's timer starts from)."""
        left = max(0, int((self.expires_at - timezone.now()).total_seconds()))
        return f"{left // 60}:{left % 60:02d}"

    @property
    def duration_seconds(self) -> int:
        end = self.ended_at or timezone.now()
        return int((end - self.started_at).total_seconds())


class MessageRole(models.TextChoices):
    LEARNER = "learner", "Learner"
    PERSONA = "persona", "Persona"
    TRAINER = "trainer", "Trainer"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STREAMING = "streaming", "Streaming"
    INCOMPLETE = "incomplete", "Incomplete"


class Message(models.Model):
    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=MessageRole.choices)
    text = models.TextField(blank=True)
    status = models.CharField(
        max_length=12, choices=MessageStatus.choices, default=MessageStatus.COMPLETE
    )
    error = models.CharField(max_length=300, blank=True)
    citations = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, null=True, blank=True)
    model = models.CharField(max_length=120, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    total_time_ms = models.PositiveIntegerField(null=True, blank=True)
    interrupted = models.BooleanField(default=False)
    # Voice turns: the learner's speech (speech_ms, words) or the reply's audio and timings
    # (audio_ms, played_ms, stage timings in ms), written by the voice pipeline.
    voice = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"

    @property
    def is_from_learner(self) -> bool:
        return self.role == MessageRole.LEARNER


class EvaluationStatus(models.TextChoices):
    PENDING = "pending", "Being prepared"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Evaluation(models.Model):
    session = models.OneToOneField(
        TrainingSession, on_delete=models.CASCADE, related_name="evaluation"
    )
    status = models.CharField(
        max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING
    )
    overall = models.PositiveSmallIntegerField(null=True, blank=True)
    rubric_scores = models.JSONField(default=list, blank=True)
    strengths = models.JSONField(default=list, blank=True)
    practise_next = models.JSONField(default=list, blank=True)
    model = models.CharField(max_length=120, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Debrief of {self.session_id}: {self.overall}"
