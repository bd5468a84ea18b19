"""AvatarAdam settings: one module, read from the environment (README lists every variable).

With no DATABASE_URL / REDIS_URL, embedded PostgreSQL+pgvector and Redis are started
under AVATAR_ADAM_VAR_DIR (see avatar_adam/embedded.py): the same code paths as
production, never SQLite or in-memory stand-ins.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from avatar_adam import embedded
from avatar_adam.redis_urls import celery_broker_url, redis_url_with_db

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = Path(env("AVATAR_ADAM_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()


def _development_key(name: str) -> str:
    """A random key kept in var/`name` (DEBUG only), made on first use."""
    key_file = VAR_DIR / name
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _secret_key() -> str:
    key = env("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random string "
            "(DEBUG=true generates a development key under var/ instead)."
        )
    return _development_key("secret_key")


SECRET_KEY = _secret_key()


def _jwt_signing_key() -> str:
    """Its own key: one leaked key must not both sign sessions and mint API tokens."""
    key = env("JWT_SIGNING_KEY", default="")
    if not key and DEBUG:
        return _development_key("jwt_signing_key")
    if not key:
        raise ImproperlyConfigured(
            "JWT_SIGNING_KEY is not set. Set JWT_SIGNING_KEY to a long random string, "
            "different from SECRET_KEY (DEBUG=true generates one under var/ instead)."
        )
    if key == SECRET_KEY and not DEBUG:
        raise ImproperlyConfigured(
            "JWT_SIGNING_KEY must differ from SECRET_KEY: set it to its own long random string."
        )
    return key


def _field_encryption_keys() -> list[bytes]:
    """Fernet keys for secrets stored in the database, newest first (accounts.encryption)."""
    from accounts.encryption import KEYS_VARIABLE, parse_keys

    raw = env(KEYS_VARIABLE, default="")
    if raw:
        return parse_keys(raw)
    if not DEBUG:
        raise ImproperlyConfigured(
            f"{KEYS_VARIABLE} is not set. It holds the keys that encrypt stored secrets "
            "(provider keys, second-factor secrets), newest first, comma-separated. "
            'Generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())" (DEBUG=true keeps a development key '
            "under var/ instead)."
        )
    key_file = VAR_DIR / "field_encryption_key"
    if not key_file.exists():
        from cryptography.fernet import Fernet

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_bytes(Fernet.generate_key())
        key_file.chmod(0o600)
    return parse_keys(key_file.read_text())


FIELD_ENCRYPTION_KEYS = _field_encryption_keys()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
if "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must not contain '*': it switches off the WebSocket origin check."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "axes",
    "django_otp",
    "django_filters",
    "django_htmx",
    "template_partials",
    "django_celery_results",
    "django_celery_beat",
    "channels",
    "django_structlog",
    "accounts",
    "knowledge",
    "training",
    "voice",
    "avatar_adam",  # project-wide management commands (seed_demo)
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "avatar_adam.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "avatar_adam.middleware.RequestIdHeaderMiddleware",
    "avatar_adam.middleware.RedisUnavailableMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "core.middleware.RefusalMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "avatar_adam.middleware.HtmxSignInRedirectMiddleware",
    "accounts.second_factor.SecondFactorMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "avatar_adam.urls"
ASGI_APPLICATION = "avatar_adam.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL", engine="django.db.backends.postgresql")}
    # A unix-socket folder may be given percent-encoded as the host: postgres://u@%2Frun%2Fpg/db
    DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
    EMBEDDED_POSTGRES = False
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": embedded.DATABASE_NAME,
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": embedded.ensure_postgres(VAR_DIR),
            "PORT": "",
        }
    }
    EMBEDDED_POSTGRES = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = DATABASE_CONNECT_TIMEOUT
for _index, _url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[])):
    DATABASES[f"replica_{_index}"] = environ.Env.db_url_config(_url)
    DATABASES[f"replica_{_index}"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["avatar_adam.db_router.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker, rate limits --------------------------

if env("REDIS_URL", default=""):
    REDIS_URL = env("REDIS_URL")
    EMBEDDED_REDIS = False
else:
    REDIS_URL = embedded.ensure_redis(VAR_DIR)
    EMBEDDED_REDIS = True
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=3.0)
# One Redis, separate logical databases so flushing the cache never drops queued tasks.
REDIS_BROKER_URL = redis_url_with_db(REDIS_URL, 0)
REDIS_CACHE_URL = redis_url_with_db(REDIS_URL, 1)
REDIS_CHANNELS_URL = redis_url_with_db(REDIS_URL, 2)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "aa",
        "OPTIONS": {
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        },
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 times blocking reads out at 5 s by default, which is the layer's own
        # BZPOPMIN wait: give reads room beyond it (a consumer would die after 5 s idle).
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_CHANNELS_URL,
                    "socket_timeout": 15,
                    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                }
            ],
            "capacity": 200,
            "expiry": 30,
        },
    }
}

# --- Celery ---------------------------------------------------------------------------

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or celery_broker_url(REDIS_BROKER_URL)
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# The visibility timeout must exceed the longest task, or Redis re-delivers running work.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int(
        "CELERY_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT + 15 * 60
    ),
    "socket_timeout": REDIS_TIMEOUT_SECONDS,
    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT_SECONDS
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Queues by kind, each served by its own workers (launcher.WORKERS; README "Queues and
# workers"): bulk ingestion can never hold up grading, a reply or a sweeper.
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
TASK_QUEUE_NAMES = ("interactive", "grading", "ingestion", "maintenance")
# Declared, so a worker started without -Q (tests, a one-box install) serves all of them.
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in TASK_QUEUE_NAMES]
CELERY_TASK_ROUTES = {
    "training.generate_reply": {"queue": "interactive"},
    "training.grade_session": {"queue": "grading"},
    "knowledge.ingest_*": {"queue": "ingestion"},
}
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-documents": {
        "task": "knowledge.requeue_stalled_documents",
        "schedule": 120.0,
    },
    "end-expired-sessions": {"task": "training.end_expired_sessions", "schedule": 60.0},
    "assignment-reminders": {"task": "training.send_due_reminders", "schedule": 3600.0},
    "finish-abandoned-replies": {"task": "training.finish_abandoned_replies", "schedule": 30.0},
    "purge-audit-events": {"task": "accounts.purge_audit_events", "schedule": 24 * 3600.0},
    "sweep-avatar-sessions": {"task": "voice.sweep_avatar_sessions", "schedule": 60.0},
}

# --- Auth -----------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=400)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Lockout: the 6th wrong password in 15 minutes for an account or an IP is refused with
# the lockout message, and so is every attempt after it until the cool-off ends.
# The counts live in PostgreSQL, not the Redis cache: with Redis down, sign-in keeps
# working and the lockout still holds (neither failing open to guessing nor closed to
# everyone). Successful sign-ins are in our audit log, so axes' own access log stays off.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_DISABLE_ACCESS_LOG = True
# Masked in the form data axes keeps with a failed attempt (it always masks "password").
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code", "otp", "csrfmiddlewaretoken"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=6)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_CALLABLE = "accounts.lockout.username_from_request"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# Failures reset only after the whole sign-in (password and, if enrolled, the code):
# accounts.lockout.reset_after_sign_in. Resetting on the password alone would let anyone
# who knows it guess codes without limit.
AXES_RESET_ON_SUCCESS = False
AXES_IPWARE_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_VERBOSE = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "accounts.api_keys.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "core.api_errors.error_response_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.AnonRateThrottle",
        "accounts.throttling.UserRateThrottle",
        "accounts.throttling.ApiKeyRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("THROTTLE_ANON", default="60/min"),
        "user": env("THROTTLE_USER", default="600/min"),
        "api_key": env("THROTTLE_API_KEY", default="1200/min"),
        "auth": env("THROTTLE_AUTH", default="20/min"),
        "messages": env("THROTTLE_MESSAGES", default="30/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AvatarAdam API",
    "DESCRIPTION": "Conversation training: knowledge base, scenarios, sessions and debriefs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accounts.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DocumentStatusEnum": "knowledge.models.DocumentStatus.choices",
        "SessionStatusEnum": "training.models.SessionStatus.choices",
        "MessageStatusEnum": "training.models.MessageStatus.choices",
        "EvaluationStatusEnum": "training.models.EvaluationStatus.choices",
        "ChannelEnum": "training.models.Channel.choices",
        "UserRoleEnum": "accounts.models.Role.choices",
        "ApiKeyRoleEnum": "accounts.models.API_KEY_ROLES",
        "ScenarioModeEnum": "training.models.ScenarioMode.choices",
        "SearchModeEnum": ["hybrid", "vector", "text"],
    },
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "CHECK_REVOKE_TOKEN": True,
    "SIGNING_KEY": _jwt_signing_key(),
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# --- Email ----------------------------------------------------------------------------

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="AvatarAdam <no-reply@localhost>")

# --- HTTP security --------------------------------------------------------------------

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# Sessions in PostgreSQL, never in the Redis cache: a Redis outage must not sign everyone out.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 12)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
X_FRAME_OPTIONS = "DENY"
# The hosted avatar's LiveKit rooms, which the voice page joins (static/js/avatar-livekit.js):
# LiveAvatar's rooms are on LiveKit Cloud (its signalling socket and region lookup).
AVATAR_ROOM_ORIGINS = env.list(
    "AVATAR_ROOM_ORIGINS", default=["wss://*.livekit.cloud", "https://*.livekit.cloud"]
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", *AVATAR_ROOM_ORIGINS],
        "media-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"

# Request bodies (avatar_adam.body_limits): up to 1 MB, except at the upload addresses
# (REQUEST_BODY_MAX_BYTES, below); refused by their declared length before being read.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
# An accepted body, and each uploaded file, is kept in memory up to this size and written
# to a temporary file in FILE_UPLOAD_TEMP_DIR (the system's when unset) beyond it.
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR", default=None)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

METRICS_BEARER_TOKEN = env("METRICS_BEARER_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
PROMETHEUS_METRIC_NAMESPACE = "avatar_adam"

# --- i18n, static, media --------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))
try:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
except OSError:
    pass
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# --- Knowledge base -------------------------------------------------------------------

# Uploaded documents are encrypted at rest when MEDIA_ENCRYPTION_KEY is set
# (knowledge.storage; 32 random bytes, url-safe base64).
MEDIA_ENCRYPTION_KEY = env("MEDIA_ENCRYPTION_KEY", default="")
if MEDIA_ENCRYPTION_KEY:
    from knowledge.storage import parse_media_key

    parse_media_key(MEDIA_ENCRYPTION_KEY)  # a malformed key stops start-up, naming it
STORAGES = {
    "default": {
        "BACKEND": env(
            "DOCUMENT_STORAGE_BACKEND",
            default="knowledge.storage.EncryptedFileSystemStorage"
            if MEDIA_ENCRYPTION_KEY
            else "django.core.files.storage.FileSystemStorage",
        )
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DOCUMENT_MAX_BYTES = env.int("DOCUMENT_MAX_BYTES", default=25 * 1024 * 1024)
# A whole request to an upload address: the largest document and room for the form around it.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=DOCUMENT_MAX_BYTES + 1024 * 1024)
DOCUMENT_MAX_PAGES = env.int("DOCUMENT_MAX_PAGES", default=2000)
DOCUMENT_PARSE_TIMEOUT_SECONDS = env.int("DOCUMENT_PARSE_TIMEOUT_SECONDS", default=120)
DOCUMENT_PARSE_MEMORY_MB = env.int("DOCUMENT_PARSE_MEMORY_MB", default=1024)
DOCUMENT_MAX_UNCOMPRESSED_BYTES = env.int(
    "DOCUMENT_MAX_UNCOMPRESSED_BYTES", default=200 * 1024 * 1024
)
# Each organization's share of the knowledge base: the limits a new organization starts
# with (a platform operator changes one organization's own limits in the admin).
KNOWLEDGE_MAX_BYTES_PER_ORGANIZATION = env.int(
    "KNOWLEDGE_MAX_BYTES_PER_ORGANIZATION", default=500 * 1024 * 1024
)
KNOWLEDGE_MAX_DOCUMENTS_PER_ORGANIZATION = env.int(
    "KNOWLEDGE_MAX_DOCUMENTS_PER_ORGANIZATION", default=1000
)
KNOWLEDGE_MAX_CHUNKS_PER_ORGANIZATION = env.int(
    "KNOWLEDGE_MAX_CHUNKS_PER_ORGANIZATION", default=100_000
)
# At most one email a day to an organization's admins for each kind of notice (billing,
# knowledge-base limits); the notice stays on their home page until dismissed.
NOTICE_EMAIL_INTERVAL_HOURS = env.int("NOTICE_EMAIL_INTERVAL_HOURS", default=24)
# Learners' assignment emails (training/reminders.py): the address links start with, how
# long before the due date "due soon" is sent, and at most how many a learner gets a day.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")
ASSIGNMENT_DUE_SOON_HOURS = env.int("ASSIGNMENT_DUE_SOON_HOURS", default=48)
ASSIGNMENT_EMAILS_PER_DAY = env.int("ASSIGNMENT_EMAILS_PER_DAY", default=1)
CHUNK_TARGET_TOKENS = env.int("CHUNK_TARGET_TOKENS", default=220)
CHUNK_OVERLAP_TOKENS = env.int("CHUNK_OVERLAP_TOKENS", default=40)
EMBEDDING_PROVIDER = env("EMBEDDING_PROVIDER", default="local")
EMBEDDING_MODEL = env("EMBEDDING_MODEL", default="all-MiniLM-L6-v2")
EMBEDDING_DIMENSIONS = env.int(
    "EMBEDDING_DIMENSIONS", default=384 if EMBEDDING_PROVIDER == "local" else 1536
)
EMBEDDING_BASE_URL = env("EMBEDDING_BASE_URL", default="https://api.openai.com/v1")
EMBEDDING_API_KEY = env("EMBEDDING_API_KEY", default="")
EMBEDDING_TIMEOUT_SECONDS = env.float("EMBEDDING_TIMEOUT_SECONDS", default=20.0)
EMBEDDING_THREADS = env.int("EMBEDDING_THREADS", default=2)
RETRIEVAL_CACHE_SECONDS = env.int("RETRIEVAL_CACHE_SECONDS", default=24 * 60 * 60)
RETRIEVAL_EF_SEARCH = env.int("RETRIEVAL_EF_SEARCH", default=100)
RETRIEVAL_CANDIDATES = env.int("RETRIEVAL_CANDIDATES", default=40)
RETRIEVAL_FUSION = env("RETRIEVAL_FUSION", default="score")  # "score" or "rrf"
RETRIEVAL_LEXICAL_WEIGHT = env.float("RETRIEVAL_LEXICAL_WEIGHT", default=0.0)

# --- Conversation engine ----------------------------------------------------------------

# Organizations' own provider endpoints may point at private addresses (core.endpoints).
PROVIDER_ENDPOINTS_ALLOW_PRIVATE = env.bool("PROVIDER_ENDPOINTS_ALLOW_PRIVATE", default=DEBUG)
LLM_API_KEY = env("LLM_API_KEY", default="")
LLM_BASE_URL = env("LLM_BASE_URL", default="https://openrouter.ai/api/v1")
# "openai" (any OpenAI-compatible API) once a key or a base URL is configured; else offline.
LLM_PROVIDER = env(
    "LLM_PROVIDER",
    default="openai" if (LLM_API_KEY or env("LLM_BASE_URL", default="")) else "offline",
)
LLM_MODEL = env("LLM_MODEL", default="openai/gpt-4o-mini")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=30.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=5)
LLM_MAX_REPLY_TOKENS = env.int("LLM_MAX_REPLY_TOKENS", default=400)
LLM_HISTORY_TOKEN_BUDGET = env.int("LLM_HISTORY_TOKEN_BUDGET", default=3000)
LLM_APP_URL = env("LLM_APP_URL", default="")
# US dollars per million tokens, for cost accounting per message (unset: cost unknown).
LLM_PRICE_PROMPT_PER_MTOK = float(env("LLM_PRICE_PROMPT_PER_MTOK", default="") or "nan")
LLM_PRICE_COMPLETION_PER_MTOK = float(env("LLM_PRICE_COMPLETION_PER_MTOK", default="") or "nan")
LLM_STAND_IN_TOKEN_DELAY_MS = env.int("LLM_STAND_IN_TOKEN_DELAY_MS", default=20)
# Replies are generated in the web process (training/turns.py); "celery" sends them to the
# reserved `interactive` queue instead (measured in BENCHMARKS.md, "Replies under load").
REPLY_RUNNER = env("REPLY_RUNNER", default="process")
if REPLY_RUNNER not in {"process", "celery"}:
    raise ImproperlyConfigured('REPLY_RUNNER must be "process" or "celery".')
REPLY_TIMEOUT_SECONDS = env.float("REPLY_TIMEOUT_SECONDS", default=90.0)
REPLY_SLOW_START_SECONDS = env.float("REPLY_SLOW_START_SECONDS", default=3.0)
REPLY_HEARTBEAT_SECONDS = env.float("REPLY_HEARTBEAT_SECONDS", default=5.0)
REPLY_STALL_SECONDS = env.float("REPLY_STALL_SECONDS", default=30.0)
MESSAGE_MAX_CHARS = env.int("MESSAGE_MAX_CHARS", default=4000)
MESSAGE_RATE_PER_MINUTE = env.int("MESSAGE_RATE_PER_MINUTE", default=20)
TRAINING_PASSAGES = env.int("TRAINING_PASSAGES", default=4)
# A message posted through the API without streaming waits this long for the whole reply
# (then answers 202 with the reply still being written).
API_REPLY_WAIT_SECONDS = env.float("API_REPLY_WAIT_SECONDS", default=60.0)

# --- Voice (voice/): providers, turn-taking, limits -------------------------------------

# Speech-to-text: "local" (faster-whisper tiny.en, offline), "openai-realtime" (streaming
# deltas over WebSocket, HTTP as its fallback) or "openai-http" (one request a segment);
# any OpenAI-compatible server by base URL. An organization's own key comes first.
VOICE_STT_PROVIDER = env("VOICE_STT_PROVIDER", default="local")
VOICE_STT_API_KEY = env("VOICE_STT_API_KEY", default="")
VOICE_STT_BASE_URL = env("VOICE_STT_BASE_URL", default="https://api.openai.com/v1")
VOICE_STT_MODEL = env("VOICE_STT_MODEL", default="gpt-4o-mini-transcribe")
VOICE_STT_TIMEOUT_SECONDS = env.float("VOICE_STT_TIMEOUT_SECONDS", default=10.0)
VOICE_STT_THREADS = env.int("VOICE_STT_THREADS", default=2)
# Text-to-speech: "local" (Piper, offline) or "elevenlabs" (WebSocket input streaming with
# a Flash model, one connection per call; the HTTP stream as its fallback).
VOICE_TTS_PROVIDER = env("VOICE_TTS_PROVIDER", default="local")
VOICE_TTS_API_KEY = env("VOICE_TTS_API_KEY", default="")
VOICE_TTS_BASE_URL = env("VOICE_TTS_BASE_URL", default="https://api.elevenlabs.io")
VOICE_TTS_MODEL = env("VOICE_TTS_MODEL", default="eleven_flash_v2_5")
VOICE_TTS_TIMEOUT_SECONDS = env.float("VOICE_TTS_TIMEOUT_SECONDS", default=10.0)
# Talking avatar (voice/avatar/): "local" (the page draws its own face, offline) or
# "liveavatar" (HeyGen's LiveAvatar in LITE mode, driven by our own speech). An
# organization's own avatar key comes first; without any key the call is voice only.
AVATAR_PROVIDER = env("AVATAR_PROVIDER", default="local")
LIVEAVATAR_API_KEY = env("LIVEAVATAR_API_KEY", default="")
LIVEAVATAR_BASE_URL = env("LIVEAVATAR_BASE_URL", default="https://api.liveavatar.com")
LIVEAVATAR_AVATAR_ID = env("LIVEAVATAR_AVATAR_ID", default="")
LIVEAVATAR_VIDEO_QUALITY = env("LIVEAVATAR_VIDEO_QUALITY", default="high")
LIVEAVATAR_SANDBOX = env.bool("LIVEAVATAR_SANDBOX", default=False)
# Each HTTP call and each command sent; then the wait for the avatar to join its room.
LIVEAVATAR_TIMEOUT_SECONDS = env.float("LIVEAVATAR_TIMEOUT_SECONDS", default=10.0)
LIVEAVATAR_CONNECT_TIMEOUT_SECONDS = env.float("LIVEAVATAR_CONNECT_TIMEOUT_SECONDS", default=20.0)
# A hosted avatar session whose call has not refreshed it for this long was lost with its
# process: it stops counting against the organization's cap and the sweeper stops it.
AVATAR_IDLE_SECONDS = env.int("AVATAR_IDLE_SECONDS", default=60)
# Load the offline voice models when a web process starts (else on the first call).
VOICE_PRELOAD = env.bool("VOICE_PRELOAD", default=True)
# Turn-taking (voice/pipeline.py).
VOICE_VAD_THRESHOLD = env.float("VOICE_VAD_THRESHOLD", default=0.5)
VOICE_VAD_START_MS = env.int("VOICE_VAD_START_MS", default=96)
VOICE_VAD_STOP_MS = env.int("VOICE_VAD_STOP_MS", default=256)
VOICE_END_OF_TURN_MODEL = env.bool("VOICE_END_OF_TURN_MODEL", default=True)
# The model's probability that confirms a turn; lower when the transcript ends a sentence.
VOICE_END_OF_TURN_THRESHOLD = env.float("VOICE_END_OF_TURN_THRESHOLD", default=0.5)
VOICE_END_OF_TURN_SENTENCE_THRESHOLD = env.float(
    "VOICE_END_OF_TURN_SENTENCE_THRESHOLD", default=0.35
)
VOICE_SILENCE_FALLBACK_MS = env.int("VOICE_SILENCE_FALLBACK_MS", default=1200)
# Silence that confirms a turn the end-of-turn model judged complete (a draft reply is
# already being written meanwhile).
VOICE_CONFIRM_SILENCE_MS = env.int("VOICE_CONFIRM_SILENCE_MS", default=500)
# A pause this long, with a recogniser that streams partial text, starts a draft reply on
# that text before the VAD's stop and the final transcript (0: off).
VOICE_DRAFT_PAUSE_MS = env.int("VOICE_DRAFT_PAUSE_MS", default=96)
VOICE_BARGE_IN_GRACE_MS = env.int("VOICE_BARGE_IN_GRACE_MS", default=400)
VOICE_BARGE_IN_MIN_SPEECH_MS = env.int("VOICE_BARGE_IN_MIN_SPEECH_MS", default=192)
VOICE_BARGE_IN_MIN_WORDS = env.int("VOICE_BARGE_IN_MIN_WORDS", default=2)
# ...and at least this much clear speech (VAD probability over the threshold) in it: a
# cough or a laugh is ~250 ms, "Wait, stop" ~450 ms, "Hold on" ~550 ms.
VOICE_BARGE_IN_MIN_VOICED_MS = env.int("VOICE_BARGE_IN_MIN_VOICED_MS", default=384)
VOICE_BARGE_IN_CONFIRM_MS = env.int("VOICE_BARGE_IN_CONFIRM_MS", default=800)
# How far ahead of real time reply audio is sent (the client's buffer), in ms.
VOICE_PLAYBACK_LEAD_MS = env.int("VOICE_PLAYBACK_LEAD_MS", default=300)
# Limits.
VOICE_MAX_CALLS_PER_USER = env.int("VOICE_MAX_CALLS_PER_USER", default=1)
VOICE_IDLE_SECONDS = env.int("VOICE_IDLE_SECONDS", default=30)
VOICE_RECHECK_SECONDS = env.float("VOICE_RECHECK_SECONDS", default=2.0)
VOICE_TICKET_SECONDS = env.int("VOICE_TICKET_SECONDS", default=60)
# Audio may arrive this much faster than real time (network bunching) before a refusal.
VOICE_MAX_AUDIO_AHEAD_MS = env.int("VOICE_MAX_AUDIO_AHEAD_MS", default=2000)

# --- Logging: structured JSON, pretty in a terminal -----------------------------------

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="console" if DEBUG else "json")
DJANGO_STRUCTLOG_CELERY_ENABLED = True
from avatar_adam.logging import configure_logging  # noqa: E402

LOGGING = configure_logging(LOG_FORMAT, LOG_LEVEL)
