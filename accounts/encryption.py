"""Secrets encrypted at rest: the one encrypted field type, its keys, and key rotation.

Keys come from `FIELD_ENCRYPTION_KEYS` (settings; comma-separated Fernet keys, newest
first). MultiFernet encrypts with the first and decrypts with any, so adding a new key in
front and running `manage.py rotate_encryption_keys` moves every value to it; the old key
can be dropped afterwards.

A value that cannot be decrypted (tampered ciphertext, or a key that was dropped too
early) loads as `CannotDecrypt`, not as an exception: the page around it still works,
shows "cannot decrypt" naming the field, and saving the object keeps the stored
ciphertext untouched. Code that needs the plain value calls `reveal()`, which raises
`DecryptionError` naming the field.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction

log = structlog.get_logger(__name__)

KEYS_VARIABLE = "FIELD_ENCRYPTION_KEYS"


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


def parse_keys(raw: str) -> list[bytes]:
    """The keys of `FIELD_ENCRYPTION_KEYS`, validated; raises ImproperlyConfigured naming
    the variable when one is not a Fernet key."""
    keys = [part.strip().encode() for part in raw.split(",") if part.strip()]
    if not keys:
        raise ImproperlyConfigured(f"{KEYS_VARIABLE} is set but holds no key.")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"{KEYS_VARIABLE}: key {position} of {len(keys)} is not a Fernet key "
                "(32 random bytes, url-safe base64). Generate one with: python -c "
                '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from None
    return keys


@functools.cache
def _fernet_for(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def newest_fernet() -> Fernet:
    return Fernet(settings.FIELD_ENCRYPTION_KEYS[0])


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode()).decode()


class CannotDecrypt:
    """What an encrypted field holds when its stored value does not decrypt."""

    def __init__(self, label: str, ciphertext: str) -> None:
        self.label = label
        self.ciphertext = ciphertext

    @property
    def message(self) -> str:
        return (
            f"Cannot decrypt {self.label}: the stored value does not match any key in "
            f"{KEYS_VARIABLE}. Enter the secret again."
        )

    def __str__(self) -> str:
        return f"⚠ {self.message}"

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CannotDecrypt) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)


def reveal(value: str | CannotDecrypt | None) -> str:
    """The plain secret, or DecryptionError naming the field when it cannot be read."""
    if isinstance(value, CannotDecrypt):
        raise DecryptionError(value.message)
    return value or ""


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; empty stays empty (means "not set")."""

    description = "Text encrypted at rest (Fernet, keys from FIELD_ENCRYPTION_KEYS)"

    def label(self) -> str:
        return f"{self.model._meta.verbose_name} “{self.verbose_name}”"

    def from_db_value(self, value: str | None, expression: Any, conn: Any) -> Any:
        if not value:
            return value
        try:
            return decrypt(value)
        except InvalidToken:
            log.error("encryption.cannot_decrypt", field=self.label())
            return CannotDecrypt(self.label(), value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, CannotDecrypt):
            return value  # kept as it is, so a save stores the same ciphertext
        return super().to_python(value)

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, CannotDecrypt):
            return value.ciphertext  # saved unchanged: never encrypt the error text
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)

    def value_to_string(self, obj: models.Model) -> str:
        return ""  # never in fixtures or serialized dumps


def encrypted_fields() -> Iterator[tuple[type[models.Model], EncryptedTextField]]:
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedTextField):
                yield model, model_field


@dataclass
class RotationCount:
    rotated: int = 0
    already_current: int = 0
    undecryptable: int = 0


def rotate_all(batch_size: int = 500) -> dict[str, RotationCount]:
    """Re-encrypt every encrypted value under the newest key, a batch per transaction.

    Resumable: values already under the newest key are left alone, so a run that was
    interrupted simply continues. Values no key can decrypt are counted and left as
    they are.
    """
    multi, newest = fernet(), newest_fernet()
    counts: dict[str, RotationCount] = {}
    for model, model_field in encrypted_fields():
        quote = connection.ops.quote_name
        table, column = quote(model._meta.db_table), quote(model_field.column)
        pk = quote(model._meta.pk.column)
        count = counts.setdefault(f"{model._meta.label}.{model_field.name}", RotationCount())
        # Identifiers come from model metadata, values are parameters.
        select_sql = f"SELECT {pk}, {column} FROM {table} WHERE {column} <> ''"  # noqa: S608
        update_sql = f"UPDATE {table} SET {column} = %s WHERE {pk} = %s"  # noqa: S608
        last_pk: Any = None
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                if last_pk is None:
                    cursor.execute(select_sql + " ORDER BY 1 LIMIT %s FOR UPDATE", [batch_size])
                else:
                    cursor.execute(
                        select_sql + f" AND {pk} > %s ORDER BY 1 LIMIT %s FOR UPDATE",
                        [last_pk, batch_size],
                    )
                rows = cursor.fetchall()
                if not rows:
                    break
                for row_pk, token in rows:
                    if token is None:
                        continue
                    try:
                        newest.decrypt(token.encode())
                        count.already_current += 1
                        continue
                    except InvalidToken:
                        pass
                    try:
                        rotated = multi.rotate(token.encode()).decode()
                    except InvalidToken:
                        count.undecryptable += 1
                        continue
                    cursor.execute(update_sql, [rotated, row_pk])
                    count.rotated += 1
                last_pk = rows[-1][0]
    return counts


def verify_keys() -> None:
    """Fail at start-up, naming the variable, when the configured keys cannot read this
    database's secrets. The first start records a check value encrypted with the
    newest key; later starts must be able to decrypt it."""
    from accounts.models import EncryptionCheck

    if EncryptionCheck._meta.db_table not in connection.introspection.table_names():
        return  # before the first migrate: nothing encrypted yet
    check = EncryptionCheck.objects.filter(pk=1).first()
    if check is None:
        EncryptionCheck.objects.get_or_create(pk=1, defaults={"value": EncryptionCheck.PLAIN})
        return
    if isinstance(check.value, CannotDecrypt) or check.value != EncryptionCheck.PLAIN:
        raise ImproperlyConfigured(
            f"{KEYS_VARIABLE} does not hold the key this database's secrets were encrypted "
            "with. Put that key back in the list (new keys go first, old keys after them "
            "until `manage.py rotate_encryption_keys` has run)."
        )


def verify_keys_or_exit() -> None:
    """For process start-up (Daphne, Celery): a wrong key stops the process with one clear
    line, not a stack trace on first use. An unreachable database is left to /readyz."""
    from django.db import DatabaseError, connections

    try:
        verify_keys()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"AvatarAdam cannot start: {exc}") from None
    except DatabaseError as exc:
        log.warning("encryption.check_skipped", reason=str(exc)[:200])
    finally:
        connections.close_all()
