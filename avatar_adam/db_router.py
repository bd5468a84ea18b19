"""Send reads to PostgreSQL replicas (DATABASE_REPLICA_URLS) and writes to the primary."""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Model


class PrimaryReplicaRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        # Inside a transaction on the primary, read what that transaction wrote; sign-in
        # lockout counts are read where they are written (a lagging replica would allow
        # extra guesses).
        if connections["default"].in_atomic_block or model._meta.app_label == "axes":
            return "default"
        replicas = [alias for alias in settings.DATABASES if alias.startswith("replica_")]
        return random.choice(replicas) if replicas else "default"  # noqa: S311 (load spreading)

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"
