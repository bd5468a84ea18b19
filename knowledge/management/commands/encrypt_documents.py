"""Encrypt documents stored before MEDIA_ENCRYPTION_KEY was set (run once after setting it).

Each plain file is rewritten encrypted next to itself and then swapped in; files already
encrypted are skipped, so the command can be interrupted and run again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.files.storage import storages
from django.core.management.base import BaseCommand, CommandError

from knowledge.models import Document
from knowledge.storage import MAGIC, EncryptedFileSystemStorage, encrypt_stream


class Command(BaseCommand):
    help = "Encrypt documents stored in plain form before MEDIA_ENCRYPTION_KEY was set."

    def handle(self, *args: Any, **options: Any) -> None:
        storage = storages["default"]
        if not isinstance(storage, EncryptedFileSystemStorage):
            raise CommandError(
                "Set MEDIA_ENCRYPTION_KEY first: documents are stored with "
                f"{type(storage).__name__}, which does not encrypt."
            )
        encrypted = skipped = missing = 0
        for name in Document.objects.order_by("pk").values_list("file", flat=True).iterator():
            path = Path(storage.path(name))
            if not path.exists():
                missing += 1
                continue
            with path.open("rb") as handle:
                if handle.read(len(MAGIC)) == MAGIC:
                    skipped += 1
                    continue
            temporary = path.with_name(path.name + ".encrypting")
            with path.open("rb") as source, temporary.open("wb") as target:
                chunks = iter(lambda: source.read(1024 * 1024), b"")
                for block in encrypt_stream(storage._master, chunks):
                    target.write(block)
            os.replace(temporary, path)
            encrypted += 1
        self.stdout.write(
            f"{encrypted} encrypted, {skipped} already encrypted, {missing} missing on disk."
        )
