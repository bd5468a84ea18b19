"""Bring every stored document to the current format at rest (run after setting
MEDIA_ENCRYPTION_KEY, and once after an upgrade that changes the format).

A plain file (stored before MEDIA_ENCRYPTION_KEY was set) is encrypted; a file in the
older record format (knowledge/storage.py) is decrypted and re-encrypted in Tink's
streaming AEAD (knowledge/media_tink.py). Each is rewritten next to itself and then
swapped in; files already in Tink's format are skipped, so the command can be interrupted
and run again. A file that cannot be decrypted is left as it is and counted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.files.storage import storages
from django.core.management.base import BaseCommand, CommandError

from knowledge import media_tink
from knowledge.models import Document
from knowledge.storage import MAGIC, DecryptingReader, EncryptedFileSystemStorage

READ_BYTES = 1024 * 1024


class Command(BaseCommand):
    help = "Encrypt plain documents and re-encrypt older ones in the current format."

    def handle(self, *args: Any, **options: Any) -> None:
        storage = storages["default"]
        if not isinstance(storage, EncryptedFileSystemStorage):
            raise CommandError(
                "Set MEDIA_ENCRYPTION_KEY first: documents are stored with "
                f"{type(storage).__name__}, which does not encrypt."
            )
        counts = dict.fromkeys(("encrypted", "re-encrypted", "current", "undecryptable"), 0)
        missing = 0
        documents = Document.objects.order_by("pk").values_list("pk", "file", "original_filename")
        for pk, name, filename in documents.iterator():
            path = Path(storage.path(name))
            if not path.exists():
                missing += 1
                continue
            with path.open("rb") as handle:
                head = handle.read(max(len(MAGIC), len(media_tink.MAGIC)))
            if head.startswith(media_tink.MAGIC):
                counts["current"] += 1
                continue
            outcome = "re-encrypted" if head.startswith(MAGIC) else "encrypted"
            temporary = path.with_name(path.name + ".encrypting")
            try:
                with path.open("rb") as source, temporary.open("wb") as target:
                    reader: Any = source
                    if outcome == "re-encrypted":
                        reader = DecryptingReader(source, storage._master, name)
                    chunks = iter(lambda reader=reader: reader.read(READ_BYTES), b"")
                    for block in media_tink.encrypt_stream(storage._master, chunks):
                        target.write(block)
            except OSError as exc:  # MediaDecryptionError: another key, or a damaged file
                temporary.unlink(missing_ok=True)
                counts["undecryptable"] += 1
                why = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
                self.stderr.write(f"Document {pk} ({filename}): left as it is: {why}.")
                continue
            os.replace(temporary, path)
            counts[outcome] += 1
        self.stdout.write(
            f"{counts['encrypted']} encrypted, {counts['re-encrypted']} re-encrypted in the "
            f"current format, {counts['current']} already current, {counts['undecryptable']} "
            f"undecryptable, {missing} missing on disk."
        )
