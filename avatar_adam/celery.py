"""The Celery app: tasks are acknowledged late and re-queued if a worker dies."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avatar_adam.settings")

app = Celery("avatar_adam")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task log lines carry the request id (and user) of the request that queued them.
app.steps["worker"].add(DjangoStructLogInitStep)


@worker_init.connect
def _check_encryption_keys(**kwargs: object) -> None:
    from accounts.encryption import verify_keys_or_exit

    verify_keys_or_exit()
