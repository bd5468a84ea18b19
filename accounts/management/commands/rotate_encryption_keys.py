"""Re-encrypt every stored secret under the newest key in FIELD_ENCRYPTION_KEYS.

    FIELD_ENCRYPTION_KEYS=<new>,<old> python manage.py rotate_encryption_keys

Batches of --batch-size rows, one transaction each; safe to interrupt and run again (values
already under the newest key are skipped). When it reports no value left under an old key
and none undecryptable, the old key can be removed from the list.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.encryption import rotate_all


class Command(BaseCommand):
    help = "Re-encrypt every encrypted value under the newest key (resumable, in batches)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        counts = rotate_all(batch_size=batch_size)
        totals = {"rotated": 0, "already_current": 0, "undecryptable": 0}
        for name, count in counts.items():
            self.stdout.write(
                f"{name}: {count.rotated} re-encrypted, {count.already_current} already "
                f"under the newest key, {count.undecryptable} cannot be decrypted"
            )
            totals["rotated"] += count.rotated
            totals["already_current"] += count.already_current
            totals["undecryptable"] += count.undecryptable
        self.stdout.write(
            f"Total: {totals['rotated']} re-encrypted, {totals['already_current']} already "
            f"current, {totals['undecryptable']} cannot be decrypted."
        )
        if totals["undecryptable"]:
            raise CommandError(
                f"{totals['undecryptable']} value(s) cannot be decrypted with any key in "
                "FIELD_ENCRYPTION_KEYS; keep the old keys until those are re-entered."
            )
