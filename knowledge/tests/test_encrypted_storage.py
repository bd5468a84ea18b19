"""Documents encrypted at rest when MEDIA_ENCRYPTION_KEY is set: ciphertext on disk,
plaintext through the app (ingestion, download), streaming both ways, and tampered or
cut files refused with a clear error."""

import base64
import os
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import override_settings

from knowledge import media_tink
from knowledge.models import DocumentStatus
from knowledge.storage import (
    MAGIC,
    RECORD_PLAIN,
    EncryptedFileSystemStorage,
    MediaDecryptionError,
    encrypt_stream,
    open_decrypting,
    parse_media_key,
)
from knowledge.tests.factories import ingested
from knowledge.tests.samples import make_pdf

MEDIA_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
SECRET_SENTENCE = b"The Zephyr discount code is ORCHID-2291 for renewals."


def encrypted_storage_settings(root):
    return override_settings(
        MEDIA_ROOT=root,
        MEDIA_ENCRYPTION_KEY=MEDIA_KEY,
        STORAGES={
            "default": {"BACKEND": "knowledge.storage.EncryptedFileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    )


@pytest.fixture
def encrypted_media(tmp_path):
    with encrypted_storage_settings(tmp_path):
        yield tmp_path


def stored_bytes(root, name):
    return (Path(root) / name).read_bytes()


def test_files_are_ciphertext_on_disk_and_plaintext_through_open(encrypted_media):
    for size in (0, 10, RECORD_PLAIN - 1, RECORD_PLAIN, RECORD_PLAIN + 1, 3 * RECORD_PLAIN):
        data = (SECRET_SENTENCE * (size // len(SECRET_SENTENCE) + 1))[:size]
        name = default_storage.save(f"documents/sample-{size}.txt", ContentFile(data))
        on_disk = stored_bytes(encrypted_media, name)
        assert on_disk.startswith(media_tink.MAGIC)  # new files: Tink's streaming AEAD
        assert SECRET_SENTENCE[:20] not in on_disk
        with default_storage.open(name, "rb") as handle:
            assert handle.read() == data
        assert default_storage.size(name) == size


def test_a_large_file_streams_a_segment_or_two_at_a_time(encrypted_media):
    chunks_read = []

    class CountingRaw:
        def __init__(self, path):
            self._file = open(path, "rb")

        def read(self, count=-1):
            chunks_read.append(count)
            return self._file.read(count)

        def seek(self, position):
            return self._file.seek(position)

        def readable(self):
            return True

        def readinto(self, target):
            data = self.read(len(target))
            target[: len(data)] = data
            return len(data)

        def close(self):
            self._file.close()

    data = os.urandom(5 * 1024 * 1024)
    name = default_storage.save("documents/large.bin", ContentFile(data))
    reader = open_decrypting(
        CountingRaw(Path(encrypted_media) / name), parse_media_key(MEDIA_KEY), name
    )
    received = bytearray()
    while block := reader.read(256 * 1024):
        received.extend(block)
    assert bytes(received) == data
    # Tink reads two 64 KiB segments at a time: bounded, never the whole 5 MB file.
    assert max(chunks_read) <= 2 * (RECORD_PLAIN + 16)


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "wrong_key"])
def test_a_changed_or_cut_file_is_refused_with_a_clear_error(encrypted_media, damage):
    data = os.urandom(3 * RECORD_PLAIN + 100)
    name = default_storage.save("documents/victim.bin", ContentFile(data))
    path = Path(encrypted_media) / name
    stored = bytearray(path.read_bytes())
    if damage == "flip":
        stored[len(stored) // 2] ^= 0x01
    elif damage == "truncate":
        stored = stored[: -(RECORD_PLAIN // 2)]
    elif damage == "append":
        stored += b"extra"
    path.write_bytes(bytes(stored))
    key = MEDIA_KEY if damage != "wrong_key" else base64.urlsafe_b64encode(os.urandom(32)).decode()
    with override_settings(MEDIA_ENCRYPTION_KEY=key):
        storage = EncryptedFileSystemStorage(location=encrypted_media)
        with pytest.raises(MediaDecryptionError, match="Cannot decrypt documents/victim"):
            with storage.open(name, "rb") as handle:
                handle.read()


@pytest.mark.django_db
def test_an_encrypted_document_is_ingested_and_downloaded_as_uploaded(
    encrypted_media, client, alice
):
    pdf = make_pdf(["Renewal pricing", "Ask about annual plans."])
    document = ingested(alice, pdf, "pricing.pdf")

    assert document.status == DocumentStatus.READY, document.error
    assert document.chunk_count >= 1
    assert b"%PDF" not in stored_bytes(encrypted_media, document.file.name)
    text_document = ingested(alice, SECRET_SENTENCE, "pricing.md")
    assert "ORCHID-2291" in text_document.chunks.first().text
    assert b"ORCHID" not in stored_bytes(encrypted_media, text_document.file.name)

    client.force_login(alice)
    response = client.get(f"/knowledge/documents/{document.pk}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == pdf


def test_a_malformed_media_key_is_refused_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="MEDIA_ENCRYPTION_KEY must be 32 random"):
        parse_media_key("too-short")


@pytest.mark.django_db
def test_documents_stored_before_the_key_was_set_are_encrypted_by_the_command(
    tmp_path, alice, capsys
):
    from django.core.management import call_command

    from knowledge.tests.factories import upload

    with override_settings(MEDIA_ROOT=tmp_path):
        document = upload(alice, SECRET_SENTENCE, "plain.txt")
    assert stored_bytes(tmp_path, document.file.name) == SECRET_SENTENCE

    with encrypted_storage_settings(tmp_path):
        call_command("encrypt_documents")
        call_command("encrypt_documents")  # again: nothing left to do
        output = capsys.readouterr().out
        assert "1 encrypted, 0 re-encrypted in the current format, 0 already current" in output
        assert "0 encrypted, 0 re-encrypted in the current format, 1 already current" in output
        assert stored_bytes(tmp_path, document.file.name).startswith(media_tink.MAGIC)
        assert b"ORCHID" not in stored_bytes(tmp_path, document.file.name)
        document.refresh_from_db()
        with document.file.open("rb") as handle:
            assert handle.read() == SECRET_SENTENCE


def _ingest_through_the_task(document):
    from knowledge import tasks

    tasks.ingest_next.apply()  # the real task: claims the queued document, ingests it
    document.refresh_from_db()
    return document


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        ("stored_before_the_key", "the stored file is not encrypted"),
        ("wrong_key", "the stored file cannot be decrypted: its header does not authenticate"),
        ("truncated", "the stored file cannot be decrypted: a segment does not authenticate"),
        ("missing", "the stored file is missing from storage"),
        ("key_removed", "the stored file is encrypted, but MEDIA_ENCRYPTION_KEY is not set"),
    ],
)
def test_a_stored_file_that_cannot_be_read_fails_its_document_naming_the_cause(
    tmp_path, alice, damage, cause
):
    from knowledge.tests.factories import upload

    data = SECRET_SENTENCE * (RECORD_PLAIN // len(SECRET_SENTENCE) + 10)  # two records
    if damage == "stored_before_the_key":
        with override_settings(MEDIA_ROOT=tmp_path):
            document = upload(alice, data, "plain.md")
    else:
        with encrypted_storage_settings(tmp_path):
            document = upload(alice, data, "sealed.md")
    path = Path(tmp_path) / document.file.name
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "missing":
        path.unlink()
    other_key = base64.urlsafe_b64encode(os.urandom(32)).decode()

    if damage == "key_removed":
        with override_settings(MEDIA_ROOT=tmp_path):
            document = _ingest_through_the_task(document)
    else:
        with (
            encrypted_storage_settings(tmp_path),
            override_settings(
                MEDIA_ENCRYPTION_KEY=other_key if damage == "wrong_key" else MEDIA_KEY
            ),
        ):
            document = _ingest_through_the_task(document)

    assert document.status == DocumentStatus.FAILED
    assert document.error.startswith("The document could not be read: ")
    assert cause in document.error
    assert document.chunks.count() == 0
    for secret in (MEDIA_KEY, other_key, str(tmp_path), document.file.name):
        assert secret not in document.error


@pytest.mark.django_db
def test_downloading_a_file_stored_before_the_key_says_why_it_cannot(tmp_path, client, alice):
    from knowledge.tests.factories import upload

    with override_settings(MEDIA_ROOT=tmp_path):
        document = upload(alice, SECRET_SENTENCE, "plain.md")
    client.force_login(alice)
    with encrypted_storage_settings(tmp_path):
        response = client.get(f"/knowledge/documents/{document.pk}/download/")
    assert response.status_code == 409
    assert b"the stored file is not encrypted" in response.content
    assert SECRET_SENTENCE not in response.content


@pytest.mark.django_db
def test_files_in_the_older_format_are_read_and_the_command_moves_them_to_tink(
    encrypted_media, alice, capsys
):
    """Files written by the record format of before Tink still open; the command
    re-encrypts them in Tink's format (once), and a file it cannot decrypt is left alone
    and counted."""
    from django.core.management import call_command

    from knowledge.tests.factories import upload

    data = SECRET_SENTENCE * (RECORD_PLAIN // len(SECRET_SENTENCE) + 10)
    master = parse_media_key(MEDIA_KEY)
    old = upload(alice, b"placeholder one", "old.md")
    damaged = upload(alice, b"placeholder two", "damaged.md")
    for document, content in ((old, data), (damaged, b"will be cut")):
        path = Path(encrypted_media) / document.file.name
        path.write_bytes(b"".join(encrypt_stream(master, iter([content]))))
    damaged_path = Path(encrypted_media) / damaged.file.name
    damaged_path.write_bytes(damaged_path.read_bytes()[:-5])
    assert stored_bytes(encrypted_media, old.file.name).startswith(MAGIC)
    with default_storage.open(old.file.name, "rb") as handle:
        assert handle.read() == data
    assert default_storage.size(old.file.name) == len(data)

    call_command("encrypt_documents")
    call_command("encrypt_documents")
    output = capsys.readouterr()
    first, second = output.out.splitlines()
    assert first.startswith(
        "0 encrypted, 1 re-encrypted in the current format, 0 already current, 1 undecryptable"
    )
    assert second.startswith(
        "0 encrypted, 0 re-encrypted in the current format, 1 already current, 1 undecryptable"
    )
    assert (
        f"Document {damaged.pk} (damaged.md): left as it is: the stored file cannot" in output.err
    )
    assert stored_bytes(encrypted_media, old.file.name).startswith(media_tink.MAGIC)
    with default_storage.open(old.file.name, "rb") as handle:
        assert handle.read() == data
    assert stored_bytes(encrypted_media, damaged.file.name).startswith(MAGIC)  # left alone
