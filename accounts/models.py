"""Organizations, teams, users and their roles; API keys for servers."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django_otp.models import Device
from django_otp.oath import TOTP

from accounts.encryption import EncryptedTextField


def default_knowledge_bytes_limit() -> int | None:
    return settings.KNOWLEDGE_MAX_BYTES_PER_ORGANIZATION or None


def default_knowledge_documents_limit() -> int | None:
    return settings.KNOWLEDGE_MAX_DOCUMENTS_PER_ORGANIZATION or None


def default_knowledge_chunks_limit() -> int | None:
    return settings.KNOWLEDGE_MAX_CHUNKS_PER_ORGANIZATION or None


# Limits on an organization's use of the shared platform: platform operators set them.
KNOWLEDGE_LIMIT_FIELDS = (
    "knowledge_bytes_limit",
    "knowledge_documents_limit",
    "knowledge_chunks_limit",
)


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    require_second_factor = models.BooleanField(
        "second factor required for managers and admins",
        default=False,
        help_text="Managers and organization admins must sign in with an authenticator "
        "code; learners may choose to.",
    )
    managers_see_audit_log = models.BooleanField(
        "managers see the audit log",
        default=False,
        help_text="Organization admins always see it; this lets managers read it too.",
    )
    voice_minutes_per_month = models.PositiveIntegerField(
        "voice minutes a month",
        null=True,
        blank=True,
        help_text="Minutes of voice practice the organization's learners may use each "
        "calendar month (blank: no limit).",
    )
    avatar_sessions_limit = models.PositiveIntegerField(
        "video avatar sessions at once",
        null=True,
        blank=True,
        default=2,
        help_text="Hosted video avatar sessions (billed per minute) the organization's "
        "learners may have open at once; further calls use the page's own face (blank: no "
        "limit).",
    )
    avatar_minutes_per_month = models.PositiveIntegerField(
        "video avatar minutes a month",
        null=True,
        blank=True,
        help_text="Minutes of hosted video avatar the organization may use each calendar "
        "month; past them calls go on with voice and the page's own face (blank: no limit).",
    )
    knowledge_bytes_limit = models.PositiveBigIntegerField(
        "knowledge base storage (bytes)",
        null=True,
        blank=True,
        default=default_knowledge_bytes_limit,
        help_text="Total size of the documents the organization may keep "
        "(KNOWLEDGE_MAX_BYTES_PER_ORGANIZATION for a new one; blank: no limit).",
    )
    knowledge_documents_limit = models.PositiveIntegerField(
        "knowledge base documents",
        null=True,
        blank=True,
        default=default_knowledge_documents_limit,
        help_text="Documents the organization may keep "
        "(KNOWLEDGE_MAX_DOCUMENTS_PER_ORGANIZATION for a new one; blank: no limit).",
    )
    knowledge_chunks_limit = models.PositiveIntegerField(
        "knowledge base passages",
        null=True,
        blank=True,
        default=default_knowledge_chunks_limit,
        help_text="Passages (searchable chunks) the organization's documents may make "
        "(KNOWLEDGE_MAX_CHUNKS_PER_ORGANIZATION for a new one; blank: no limit).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    LEARNER = "learner", "Learner"
    MANAGER = "manager", "Manager"
    ADMIN = "admin", "Organization admin"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username or "")


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address.

    A user belongs to at most one organization with one role there. Django superusers are
    platform operators and need no organization. Managers and organization admins get
    `is_staff` so they can use the (organization-scoped) admin.
    """

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.LEARNER)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(is_superuser=True) | models.Q(organization__isnull=False),
                name="user_in_organization_unless_operator",
            )
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = self.email.lower()
        self.is_staff = self.is_superuser or self.role in (Role.MANAGER, Role.ADMIN)
        password_changed = self._password is not None and self.pk is not None
        super().save(*args, **kwargs)
        if password_changed:
            # A new password ends every API session too (access tokens end by themselves:
            # they carry a fingerprint of the password hash).
            from django.db import transaction

            from accounts.services import revoke_refresh_tokens

            transaction.on_commit(lambda: revoke_refresh_tokens(self))

    @property
    def display_name(self) -> str:
        return self.full_name or self.email

    @property
    def is_learner(self) -> bool:
        return self.role == Role.LEARNER and not self.is_superuser

    @property
    def is_manager(self) -> bool:
        """Manager or organization admin: may manage their organization's content."""
        return self.role in (Role.MANAGER, Role.ADMIN)

    @property
    def is_org_admin(self) -> bool:
        return self.role == Role.ADMIN


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(User, related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="team_name_unique_in_org")
        ]

    def __str__(self) -> str:
        return self.name


API_KEY_PREFIX_LENGTH = 8
API_KEY_ROLES = [(Role.MANAGER.value, Role.MANAGER.label), (Role.ADMIN.value, Role.ADMIN.label)]


def _hash_api_key(secret: str) -> str:
    # Keys are 256 random bits, so a fast hash is safe and lets lookups use an index.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A server's credential for the API, scoped to one organization.

    Only a hash is stored; the full key is shown once at creation. The prefix stays
    visible so people can tell keys apart.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=API_KEY_PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    role = models.CharField(
        max_length=16,
        choices=API_KEY_ROLES,
        default=Role.MANAGER,
    )
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """Return (full key, prefix, hash) for a new key."""
        prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
        full_key = f"aa_{prefix}_{secrets.token_urlsafe(32)}"
        return full_key, prefix, _hash_api_key(full_key)

    @staticmethod
    def hash_key(full_key: str) -> str:
        return _hash_api_key(full_key)


class AuditAction(models.TextChoices):
    """The accounts app's own audit actions (registered in AccountsConfig.ready()). Other
    apps register theirs with accounts.audit.register_actions(); none is a database choice,
    so a new action needs no migration."""

    LOGIN = "auth.login", "Signed in"
    LOGIN_FAILED = "auth.login_failed", "Sign-in failed"
    PASSWORD_ACCEPTED = "auth.password_accepted", "Password accepted, second factor pending"
    USER_ROLE_CHANGED = "user.role_changed", "Role changed"
    USER_DEACTIVATED = "user.deactivated", "User deactivated"
    APIKEY_CREATED = "apikey.created", "API key created"
    APIKEY_REVOKED = "apikey.revoked", "API key revoked"
    TEAM_CREATED = "team.created", "Team created"
    TEAM_UPDATED = "team.updated", "Team changed"
    TEAM_DELETED = "team.deleted", "Team deleted"
    USER_CREATED = "user.created", "User added"
    OTP_ENABLED = "auth.otp_enabled", "Second factor enabled"
    OTP_DISABLED = "auth.otp_disabled", "Second factor disabled"
    RECOVERY_CODES_REGENERATED = "auth.recovery_codes_regenerated", "Recovery codes replaced"
    RECOVERY_CODE_USED = "auth.recovery_code_used", "Signed in with a recovery code"
    ORG_CREATED = "org.created", "Organization created"
    ORG_SETTINGS_CHANGED = "org.settings_changed", "Organization settings changed"
    PROVIDER_KEY_CHANGED = "provider_key.changed", "Provider key changed"
    RETENTION_RAN = "audit.retention_ran", "Old audit events removed"


class AuditEvent(models.Model):
    """Who did what, when, from where. Append-only: a database trigger refuses UPDATE and
    DELETE except for the retention job."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
        db_constraint=False,
    )  # fmt: skip
    actor_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
        db_constraint=False,
    )  # fmt: skip
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
        db_constraint=False,
    )  # fmt: skip
    actor_label = models.CharField(max_length=254, blank=True)
    # Any registered action (accounts.audit), checked when recorded, not by the database.
    action = models.CharField(max_length=40)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    def get_action_display(self) -> str:
        """The action's registered label (the field has no choices to give one)."""
        from accounts import audit  # audit imports this module

        return audit.action_label(self.action)


class EncryptionCheck(models.Model):
    """One row whose value the configured keys must decrypt (checked at start-up)."""

    PLAIN = "avatar-adam-encryption-check"
    value = EncryptedTextField()

    class Meta:
        verbose_name = "encryption check"

    def __str__(self) -> str:
        return "encryption check"


class ProviderService(models.TextChoices):
    LLM = "llm", "Language model"
    EMBEDDINGS = "embeddings", "Embeddings"
    SPEECH_TO_TEXT = "speech_to_text", "Speech to text"
    TEXT_TO_SPEECH = "text_to_speech", "Text to speech"
    AVATAR = "avatar", "Video avatar"


class ProviderCredential(models.Model):
    """An organization's own key (and optionally endpoint) for a hosted AI service.

    The key is encrypted at rest and never shown again after it is saved.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="provider_credentials"
    )
    service = models.CharField(max_length=20, choices=ProviderService.choices)
    base_url = models.URLField(
        "endpoint", blank=True, help_text="Leave empty for the provider's default endpoint."
    )
    api_key = EncryptedTextField("API key")
    updated_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "service"]
        verbose_name = "provider key"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "service"], name="provider_key_unique_per_service"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_service_display()} key"


TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
TOTP_TOLERANCE_STEPS = 1


def _new_totp_key() -> str:
    return secrets.token_hex(20)


class AuthenticatorDevice(Device):
    """A TOTP authenticator app (RFC 6238), its secret encrypted at rest.

    Codes are accepted one step either side of now, and each step once: `last_step`
    refuses a replay of a code already used.
    """

    key = EncryptedTextField(default=_new_totp_key)
    last_step = models.BigIntegerField(default=-1)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "authenticator app"

    def secret_bytes(self) -> bytes:
        from accounts.encryption import reveal

        return bytes.fromhex(reveal(self.key))

    def totp(self) -> TOTP:
        return TOTP(self.secret_bytes(), step=TOTP_STEP_SECONDS, digits=TOTP_DIGITS)

    def verify_token(self, token: Any) -> bool:
        from accounts.encryption import DecryptionError

        token = str(token or "").strip().replace(" ", "")
        if not (token.isascii() and token.isdigit()) or len(token) != TOTP_DIGITS:
            return False
        try:
            totp = self.totp()
        except DecryptionError:
            # Logged by the field; the person can still sign in with a recovery code.
            return False
        now_step = totp.t()
        for offset in range(-TOTP_TOLERANCE_STEPS, TOTP_TOLERANCE_STEPS + 1):
            step = now_step + offset
            totp.drift = offset
            if step > self.last_step and secrets.compare_digest(
                f"{totp.token():0{TOTP_DIGITS}d}", token
            ):
                # Conditional update: two requests racing with the same code cannot both win.
                won = AuthenticatorDevice.objects.filter(pk=self.pk, last_step__lt=step).update(
                    last_step=step
                )
                if won:
                    self.last_step = step
                return bool(won)
        return False


RECOVERY_CODE_COUNT = 10


def hash_recovery_code(code: str) -> str:
    # Codes carry 80 random bits, so a fast hash is safe (as for API keys).
    normalized = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normalized.encode()).hexdigest()


class RecoveryCodeDevice(Device):
    """Ten single-use recovery codes, stored hashed."""

    class Meta:
        verbose_name = "recovery codes"

    def remaining(self) -> int:
        return self.codes.count()

    def verify_token(self, token: Any) -> bool:
        code_hash = hash_recovery_code(str(token or ""))
        deleted, _ = self.codes.filter(code_hash=code_hash).delete()
        return deleted > 0


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "code_hash"], name="recovery_code_unique")
        ]

    def __str__(self) -> str:
        return "recovery code"


class NoticeKind(models.TextChoices):
    LLM_CREDIT = "llm_credit", "Language model out of credit"
    EMBEDDINGS_CREDIT = "embeddings_credit", "Embeddings out of credit"
    KNOWLEDGE_LIMIT = "knowledge_limit", "Knowledge base limit reached"
    SPEECH_CREDIT = "speech_credit", "Speech service out of credit"
    AVATAR_CREDIT = "avatar_credit", "Video avatar out of credit"


class OrganizationNotice(models.Model):
    """A problem only the organization's admins can fix (billing, a limit reached).

    At most one open notice of each kind per organization: a repeat of the problem
    refreshes it. It stays on the admins' home page until one dismisses it or the
    problem is resolved (`closed_at`; `closed_by` is empty when the app resolved it).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=40, choices=NoticeKind.choices)
    message = models.TextField()
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind"],
                condition=models.Q(closed_at__isnull=True),
                name="one_open_notice_per_kind",
            )
        ]
        indexes = [models.Index(fields=["organization", "kind", "emailed_at"])]

    def __str__(self) -> str:
        return self.get_kind_display()
