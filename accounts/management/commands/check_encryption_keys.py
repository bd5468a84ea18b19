"""Check that FIELD_ENCRYPTION_KEYS can read this database's secrets (run at start-up)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.encryption import verify_keys


class Command(BaseCommand):
    help = "Fail with a clear message if FIELD_ENCRYPTION_KEYS cannot decrypt stored secrets."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            verify_keys()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("FIELD_ENCRYPTION_KEYS reads this database's secrets.")
