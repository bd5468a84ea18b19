"""Secrets at rest: the encrypted field, key rotation, tampered ciphertext, and start-up
checks for missing or wrong keys."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from accounts.encryption import CannotDecrypt, DecryptionError, parse_keys, reveal
from accounts.models import AuthenticatorDevice, ProviderCredential
from accounts.tests.factories import enrol_second_factor, totp_code
from conftest import database_url_for_processes

BASE_DIR = Path(__file__).resolve().parents[2]
PLAIN_KEY = "sk-or-v1-plain-provider-key-0123456789"


def raw_value(table, column, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def set_raw_value(table, column, pk, value):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])


@pytest.fixture
def credential(acme, carol):
    return ProviderCredential.objects.create(
        organization=acme, service="llm", api_key=PLAIN_KEY, updated_by=carol
    )


@pytest.mark.django_db
def test_a_secret_is_stored_as_ciphertext_and_read_back_plain(credential):
    raw = raw_value("accounts_providercredential", "api_key", credential.pk)
    assert PLAIN_KEY not in raw
    assert Fernet(os.environ["FIELD_ENCRYPTION_KEYS"].split(",")[0]).decrypt(raw.encode())
    assert ProviderCredential.objects.get(pk=credential.pk).api_key == PLAIN_KEY


@pytest.mark.django_db
def test_rotation_moves_every_secret_to_the_new_key_and_can_run_again(credential, bob, capsys):
    device, _ = enrol_second_factor(bob)
    secret = AuthenticatorDevice.objects.get(pk=device.pk).key
    old = os.environ["FIELD_ENCRYPTION_KEYS"].split(",")[0].encode()
    new = Fernet.generate_key()

    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        call_command("rotate_encryption_keys", "--batch-size", "1")
        first = capsys.readouterr().out
        call_command("rotate_encryption_keys")
        second = capsys.readouterr().out

    assert "accounts.ProviderCredential.api_key: 1 re-encrypted" in first
    assert "accounts.AuthenticatorDevice.key: 1 re-encrypted" in first
    assert "Total: 0 re-encrypted" in second  # resumable: nothing left to do
    # Only the new key is needed now.
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert ProviderCredential.objects.get(pk=credential.pk).api_key == PLAIN_KEY
        rotated = AuthenticatorDevice.objects.get(pk=device.pk)
        assert rotated.key == secret
        assert rotated.verify_token(totp_code(rotated))
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        assert isinstance(ProviderCredential.objects.get(pk=credential.pk).api_key, CannotDecrypt)


@pytest.mark.django_db
def test_tampered_ciphertext_is_a_clear_error_naming_the_field_and_the_page_still_works(
    client, credential, carol
):
    set_raw_value("accounts_providercredential", "api_key", credential.pk, "gAAAAAtampered")
    loaded = ProviderCredential.objects.get(pk=credential.pk)
    assert isinstance(loaded.api_key, CannotDecrypt)
    with pytest.raises(DecryptionError, match="Cannot decrypt provider key “API key”"):
        reveal(loaded.api_key)

    client.force_login(carol)
    listing = client.get("/admin/accounts/providercredential/")
    assert listing.status_code == 200
    assert "Cannot decrypt provider key" in listing.content.decode()
    change = client.get(f"/admin/accounts/providercredential/{credential.pk}/change/")
    assert change.status_code == 200
    assert "Cannot decrypt provider key" in change.content.decode()
    # Saving other fields keeps the stored value as it was (never the error text).
    saved = client.post(
        f"/admin/accounts/providercredential/{credential.pk}/change/",
        {"service": "llm", "base_url": "https://1.1.1.1/v1", "api_key": ""},
    )
    assert saved.status_code == 302
    assert raw_value("accounts_providercredential", "api_key", credential.pk) == "gAAAAAtampered"


def test_keys_that_are_not_fernet_keys_are_refused_naming_the_variable():
    good = Fernet.generate_key().decode()
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS: key 2 of 2"):
        parse_keys(f"{good},not-a-key")
    assert parse_keys(f" {good} ") == [good.encode()]


def start(env_overrides, code="import avatar_adam.asgi"):
    env = {**os.environ, **env_overrides}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_a_wrong_key_stops_the_server_at_start_up_naming_the_variable(credential):
    database_url = database_url_for_processes()
    ok = start({"DATABASE_URL": database_url})
    assert ok.returncode == 0, ok.stderr

    wrong = start(
        {"DATABASE_URL": database_url, "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    )
    assert wrong.returncode == 1
    assert "FIELD_ENCRYPTION_KEYS does not hold the key" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_missing_key_stops_start_up_naming_the_variable():
    missing = start({"FIELD_ENCRYPTION_KEYS": "", "DEBUG": "false"})
    assert missing.returncode == 1
    assert "FIELD_ENCRYPTION_KEYS is not set" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://1.1.1.1/v1", "must be an https"),
        ("https://169.254.169.254/latest/meta-data/", "private or reserved"),
        ("https://127.0.0.1:5432/", "private or reserved"),
        ("https://10.0.0.8/v1", "private or reserved"),
        ("https://[::1]/v1", "private or reserved"),
        ("https://user:pw@1.1.1.1/v1", "not in the URL"),
        ("https://no-such-host.invalid/v1", "cannot be resolved"),
    ],
)
def test_provider_endpoints_on_internal_addresses_are_refused(client, carol, url, reason):
    client.force_login(carol)
    response = client.post(
        "/admin/accounts/providercredential/add/",
        {"service": "llm", "base_url": url, "api_key": "sk-anything"},
    )
    assert response.status_code == 200  # the form again, with the reason
    assert reason in response.content.decode()
    assert not ProviderCredential.objects.exists()
