"""Uploaded documents encrypted at rest (`MEDIA_ENCRYPTION_KEY`).

`EncryptedFileSystemStorage` encrypts on save and decrypts on open, streaming. New files
are written with Tink's streaming AEAD (knowledge/media_tink.py: AES256-GCM-HKDF in 64 KiB
segments), the reviewed implementation of the construction below. Files written before
it are in this module's own record format, still read: a header (magic, random salt) and
records of at most 64 KiB of plaintext, each sealed with AES-256-GCM under a per-file key
derived from the master key and the salt (HKDF). The nonce is the record number and the
associated data marks the last record, so records cannot be reordered, dropped or cut
off without the read failing. `manage.py encrypt_documents` rewrites such files (and any
plain ones) in Tink's format. Neither saving nor reading holds more than a record or
segment in memory.

What it protects: the files on disk, in backups and snapshots of the media folder, when
the key (an environment variable) is kept elsewhere. What it does not: a running server
holds the key, so anyone who controls the app can read the documents; full-disk
encryption (LUKS, cloud volume encryption) covers a stolen disk for everything
including the database, and this covers the media folder even where that is missing.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import struct
from collections.abc import Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import FileSystemStorage

from knowledge import media_tink

KEY_VARIABLE = "MEDIA_ENCRYPTION_KEY"
MAGIC = b"AAENC1\n"
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + SALT_BYTES
RECORD_PLAIN = 64 * 1024
TAG_BYTES = 16
LENGTH = struct.Struct(">I")
RECORD_OVERHEAD = LENGTH.size + TAG_BYTES


class MediaDecryptionError(OSError):
    """A stored file cannot be decrypted: wrong key, or the file was changed or cut.

    `reason` says why in words fit for the document's page (no path, no key material).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_media_key(raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured(
            f"{KEY_VARIABLE} must be 32 random bytes in url-safe base64 (for example: python "
            '-c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())").'
        )
    return key


def _file_cipher(master: bytes, salt: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"avatar-adam media").derive(
        master
    )
    return AESGCM(key)


def _nonce(index: int) -> bytes:
    return b"\0\0\0\0" + struct.pack(">Q", index)


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">Q?", index, last)


def encrypt_stream(master: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Encrypted file bytes for a stream of plaintext chunks (one record held at a time)."""
    salt = os.urandom(SALT_BYTES)
    cipher = _file_cipher(master, salt)
    yield MAGIC + salt
    buffer = bytearray()
    index = 0
    pending: bytes | None = None  # a full record held back until we know if it is last

    def seal(plain: bytes, last: bool) -> bytes:
        sealed = cipher.encrypt(_nonce(index), plain, _aad(index, last))
        return LENGTH.pack(len(sealed)) + sealed

    for chunk in chunks:
        buffer.extend(chunk)
        while len(buffer) >= RECORD_PLAIN:
            if pending is not None:
                yield seal(pending, last=False)
                index += 1
            pending = bytes(buffer[:RECORD_PLAIN])
            del buffer[:RECORD_PLAIN]
    if pending is not None:
        if buffer:
            yield seal(pending, last=False)
            index += 1
            yield seal(bytes(buffer), last=True)
        else:
            yield seal(pending, last=True)
    else:
        yield seal(bytes(buffer), last=True)  # also an empty file: one empty last record


class DecryptingReader(io.RawIOBase):
    """Reads plaintext from an encrypted file, one record at a time."""

    def __init__(self, raw: Any, master: bytes, label: str) -> None:
        self._raw = raw
        self._label = label
        header = raw.read(HEADER_BYTES)
        if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
            raise MediaDecryptionError(
                f"{label} is not an encrypted AvatarAdam file (stored before "
                f"{KEY_VARIABLE} was set? Run `manage.py encrypt_documents`).",
                reason=(
                    f"the stored file is not encrypted: it was saved before {KEY_VARIABLE} "
                    "was set (an administrator can run `manage.py encrypt_documents`)"
                ),
            )
        self._cipher = _file_cipher(master, header[len(MAGIC) :])
        self._index = 0
        self._plain = b""
        self._done = False

    def _fail(self, why: str) -> MediaDecryptionError:
        return MediaDecryptionError(
            f"Cannot decrypt {self._label}: {why} (wrong {KEY_VARIABLE}, or the file was "
            "changed on disk).",
            reason=(
                f"the stored file cannot be decrypted: {why} ({KEY_VARIABLE} is not the key "
                "it was encrypted with, or the file was changed or cut short on disk)"
            ),
        )

    def _next_record(self) -> None:
        length_bytes = self._raw.read(LENGTH.size)
        if len(length_bytes) != LENGTH.size:
            raise self._fail("the file ends before its last record")
        (length,) = LENGTH.unpack(length_bytes)
        if length > RECORD_PLAIN + TAG_BYTES:
            raise self._fail("a record is longer than any we write")
        sealed = self._raw.read(length)
        if len(sealed) != length:
            raise self._fail("the file ends inside a record")
        for last in (False, True):
            try:
                self._plain = self._cipher.decrypt(
                    _nonce(self._index), sealed, _aad(self._index, last)
                )
            except InvalidTag:
                continue
            self._index += 1
            if last:
                if self._raw.read(1):
                    raise self._fail("there are bytes after the last record")
                self._done = True
            return
        raise self._fail("a record does not authenticate")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._plain and not self._done:
            self._next_record()
        count = min(len(target), len(self._plain))
        target[:count] = self._plain[:count]
        self._plain = self._plain[count:]
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class EncryptingFile(File):
    """Wraps an upload so FileSystemStorage writes its ciphertext, chunk by chunk."""

    def __init__(self, content: File, master: bytes) -> None:
        super().__init__(None, getattr(content, "name", None))
        self._content = content
        self._master = master

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return media_tink.encrypt_stream(self._master, self._content.chunks(chunk_size))


class TinkReader(media_tink.DecryptingReader):
    """A file in Tink's format; a failure is a MediaDecryptionError like the old format's."""

    def __init__(self, raw: Any, master: bytes, label: str) -> None:
        self._label = label
        super().__init__(raw, master)

    def readinto(self, target: Any) -> int:
        try:
            return super().readinto(target)
        except media_tink.TinkDecryptionError as exc:
            raise MediaDecryptionError(
                f"Cannot decrypt {self._label}: {exc.why} (wrong {KEY_VARIABLE}, or the file "
                "was changed on disk).",
                reason=(
                    f"the stored file cannot be decrypted: {exc.why} ({KEY_VARIABLE} is not "
                    "the key it was encrypted with, or the file was changed or cut short on "
                    "disk)"
                ),
            ) from None


HEAD_BYTES = max(len(MAGIC), len(media_tink.MAGIC))  # enough to tell the formats apart


def is_encrypted(head: bytes) -> bool:
    """Whether a stored file starting with `head` (HEAD_BYTES of it) is encrypted."""
    return head.startswith(MAGIC) or head.startswith(media_tink.MAGIC)


def open_decrypting(raw: Any, master: bytes, label: str) -> io.RawIOBase:
    """A reader of the plaintext of `raw` (a stored file opened "rb"), in either format."""
    if raw.read(len(media_tink.MAGIC)) == media_tink.MAGIC:
        return TinkReader(raw, master, label)
    raw.seek(0)
    return DecryptingReader(raw, master, label)


def plaintext_size(stored: int) -> int:
    body = stored - HEADER_BYTES
    full = RECORD_PLAIN + RECORD_OVERHEAD
    records, rest = divmod(body, full)
    if rest == 0 and records:
        return records * RECORD_PLAIN  # the last record was full
    return records * RECORD_PLAIN + max(0, rest - RECORD_OVERHEAD)


class EncryptedFileSystemStorage(FileSystemStorage):
    """Local file storage whose files are encrypted with MEDIA_ENCRYPTION_KEY."""

    encrypted_at_rest = True  # readers must use open(); path() leads to ciphertext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not settings.MEDIA_ENCRYPTION_KEY:
            raise ImproperlyConfigured(
                f"EncryptedFileSystemStorage needs {KEY_VARIABLE} to be set."
            )
        self._master = parse_media_key(settings.MEDIA_ENCRYPTION_KEY)

    def _save(self, name: str, content: File) -> str:
        return super()._save(name, EncryptingFile(content, self._master))

    def _open(self, name: str, mode: str = "rb") -> File:
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("Encrypted files are written through save(), not open().")
        raw = open(self.path(name), "rb")
        try:
            reader = io.BufferedReader(open_decrypting(raw, self._master, name))
        except Exception:
            raw.close()
            raise
        return File(reader, name)

    def size(self, name: str) -> int:
        with open(self.path(name), "rb") as raw:
            tink = raw.read(len(media_tink.MAGIC)) == media_tink.MAGIC
        stored = super().size(name)
        return media_tink.plaintext_size(stored) if tink else plaintext_size(stored)
