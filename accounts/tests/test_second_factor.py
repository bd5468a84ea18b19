"""Two-factor sign-in: the code step after the password, enrolment, recovery codes,
replay and lockout, the admin's sign-in, the API token endpoint, and the organization
setting that requires it."""

import pytest
from django.db import connection
from django.urls import reverse

from accounts.models import AuditEvent, AuthenticatorDevice, RecoveryCode
from accounts.tests.factories import enrol_second_factor, totp_code

pytestmark = pytest.mark.django_db


def sign_in(client, user, password):
    return client.post(reverse("login"), {"username": user.email, "password": password})


def enter_code(client, code, next_url="/"):
    return client.post(reverse("two-factor-verify"), {"code": code, "next": next_url})


def test_a_password_alone_does_not_open_any_page_for_an_enrolled_user(client, bob, password):
    enrol_second_factor(bob)
    sign_in(client, bob, password)

    for url in ("/", "/scenarios/", "/admin/", "/two-factor/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/two-factor/verify/?next=")


def test_the_right_code_opens_the_pages_and_the_same_code_is_refused_next_time(
    client, bob, password, django_user_model
):
    device, _ = enrol_second_factor(bob)
    code = totp_code(device)
    sign_in(client, bob, password)

    assert enter_code(client, code)["Location"] == "/"
    assert client.get("/").status_code == 200

    client.post(reverse("logout"))
    sign_in(client, bob, password)
    replay = enter_code(client, code)
    assert replay.status_code == 400
    assert "Each code works once" in replay.content.decode()
    assert client.get("/").status_code == 302


def test_codes_one_step_either_side_work_and_older_ones_do_not(client, bob, password):
    device, _ = enrol_second_factor(bob)
    sign_in(client, bob, password)
    assert enter_code(client, totp_code(device, -2)).status_code == 400  # expired
    assert enter_code(client, totp_code(device, +2)).status_code == 400  # too far ahead
    assert enter_code(client, "12345").status_code == 400  # not even six digits
    assert enter_code(client, totp_code(device, -1)).status_code == 302


def test_a_code_older_than_the_last_one_used_is_refused(client, bob, password):
    device, _ = enrol_second_factor(bob)
    sign_in(client, bob, password)
    assert enter_code(client, totp_code(device, +1)).status_code == 302
    client.post(reverse("logout"))
    sign_in(client, bob, password)
    assert enter_code(client, totp_code(device, 0)).status_code == 400


def test_wrong_codes_count_toward_the_same_lockout_as_wrong_passwords(client, bob, password):
    enrol_second_factor(bob)
    for _ in range(3):
        assert sign_in(client, bob, "wrong").status_code == 200
    sign_in(client, bob, password)
    assert enter_code(client, "000000").status_code == 400
    assert enter_code(client, "111111").status_code == 400
    locked = enter_code(client, "222222")  # sixth failure

    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.content.decode()
    assert client.get("/").status_code == 302  # the half-signed-in session ended
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 6
    assert sign_in(client, bob, password).status_code == 429


def test_a_recovery_code_signs_in_once(client, bob, password):
    _, codes = enrol_second_factor(bob)
    sign_in(client, bob, password)
    used = enter_code(client, codes[3].upper())  # case and dashes do not matter
    assert used.status_code == 302
    page = client.get("/", follow=True).content.decode()
    assert "recovery code; 9 left" in page
    assert AuditEvent.objects.filter(action="auth.recovery_code_used").exists()

    client.post(reverse("logout"))
    sign_in(client, bob, password)
    assert enter_code(client, codes[3]).status_code == 400


def test_recovery_codes_are_stored_hashed(bob):
    _, codes = enrol_second_factor(bob)
    stored = list(RecoveryCode.objects.values_list("code_hash", flat=True))
    assert len(codes) == len(set(codes)) == 10
    assert len(stored) == 10
    for code in codes:
        assert all(code not in value and code.replace("-", "") not in value for value in stored)


def test_the_authenticator_secret_is_encrypted_in_the_database(bob):
    device, _ = enrol_second_factor(bob)
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM accounts_authenticatordevice WHERE id = %s", [device.pk])
        (raw,) = cursor.fetchone()
    plain = AuthenticatorDevice.objects.get(pk=device.pk).key
    assert len(plain) == 40
    assert plain not in raw
    assert raw.startswith("gAAAAA")  # a Fernet token


def test_enrolment_shows_a_server_drawn_qr_code_and_is_confirmed_by_a_first_code(
    client, bob, password
):
    client.force_login(bob)
    page = client.get(reverse("two-factor-setup")).content.decode()
    assert "<svg" in page  # drawn here, not fetched from a QR service
    assert "otpauth" not in page
    device = AuthenticatorDevice.objects.get(user=bob, confirmed=False)

    wrong = client.post(reverse("two-factor-setup"), {"code": "000000"})
    assert wrong.status_code == 400
    assert "does not match" in wrong.content.decode()
    assert not AuthenticatorDevice.objects.filter(user=bob, confirmed=True).exists()
    # The same secret stays on the page after a wrong code (the app already has it).
    assert AuthenticatorDevice.objects.get(user=bob, confirmed=False).pk == device.pk

    done = client.post(reverse("two-factor-setup"), {"code": totp_code(device)})
    assert done.status_code == 200
    shown = done.content.decode()
    assert shown.count("<li><code>") == 10
    assert "shown only now" in shown
    assert AuthenticatorDevice.objects.filter(user=bob, confirmed=True).count() == 1
    assert AuditEvent.objects.filter(action="auth.otp_enabled", actor_user=bob).count() == 1
    assert client.get("/").status_code == 200  # enrolling verified this session
    # Enrolment is over: the secret is not shown again.
    assert client.get(reverse("two-factor-setup"))["Location"] == reverse("two-factor-manage")


def test_a_required_manager_is_sent_to_enrolment_and_can_do_nothing_else(
    client, acme, alice, bob, password
):
    acme.require_second_factor = True
    acme.save()
    sign_in(client, alice, password)
    for url in ("/", "/admin/", "/knowledge/", "/audit/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/two-factor/setup/")
    assert client.get(reverse("two-factor-setup")).status_code == 200

    learner = client.__class__()
    sign_in(learner, bob, password)
    assert learner.get("/").status_code == 200  # optional for learners


def test_the_admin_sign_in_goes_through_the_same_second_step(client, alice, password):
    device, _ = enrol_second_factor(alice)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": alice.email, "password": password}
    )
    assert response.status_code == 302
    held = client.get("/admin/")
    assert held["Location"] == "/two-factor/verify/?next=%2Fadmin%2F"
    assert enter_code(client, totp_code(device), "/admin/")["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_switching_off_and_new_recovery_codes_need_the_password(client, bob, password):
    device, old_codes = enrol_second_factor(bob)
    sign_in(client, bob, password)
    enter_code(client, totp_code(device))

    refused = client.post(reverse("two-factor-manage"), {"action": "disable", "password": "x"})
    assert refused.status_code == 400
    assert AuthenticatorDevice.objects.filter(user=bob, confirmed=True).exists()

    renewed = client.post(
        reverse("two-factor-manage"), {"action": "regenerate", "password": password}
    )
    assert renewed.status_code == 200
    assert RecoveryCode.objects.filter(device__user=bob).count() == 10
    client.post(reverse("logout"))
    sign_in(client, bob, password)
    assert enter_code(client, old_codes[0]).status_code == 400  # old codes are gone
    enter_code(client, totp_code(device, +1))

    off = client.post(reverse("two-factor-manage"), {"action": "disable", "password": password})
    assert off.status_code == 302
    assert not AuthenticatorDevice.objects.filter(user=bob).exists()
    assert AuditEvent.objects.filter(action="auth.otp_disabled").count() == 1


# --- the API token endpoint -------------------------------------------------------------


def token(api_client, user, password, **extra):
    return api_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": password, **extra}, format="json"
    )


def test_the_token_endpoint_asks_for_the_code_and_checks_it(api_client, bob, password):
    device, codes = enrol_second_factor(bob)

    missing = token(api_client, bob, password)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "otp_required"

    wrong = token(api_client, bob, password, otp="000000")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "otp_invalid"

    code = totp_code(device)
    assert token(api_client, bob, password, otp=code).status_code == 200
    replay = token(api_client, bob, password, otp=code)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "otp_invalid"
    assert token(api_client, bob, password, otp=codes[0]).status_code == 200

    # A wrong password is still a wrong password, whatever the code.
    assert token(api_client, bob, "nope", otp=totp_code(device, 1)).status_code == 401


def test_wrong_api_codes_lock_the_account_like_wrong_passwords(api_client, bob, password):
    enrol_second_factor(bob)
    for _ in range(5):
        assert token(api_client, bob, password, otp="000000").status_code == 401
    locked = token(api_client, bob, password, otp="000000")
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "locked_out"


def test_a_required_user_without_a_second_factor_gets_no_token(api_client, acme, alice, password):
    acme.require_second_factor = True
    acme.save()
    response = token(api_client, alice, password)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "otp_enrolment_required"


def test_digits_from_other_scripts_are_a_wrong_code_not_a_crash(client, api_client, bob, password):
    enrol_second_factor(bob)
    sign_in(client, bob, password)
    assert enter_code(client, "١٢٣٤٥٦").status_code == 400
    response = token(api_client, bob, password, otp="١٢٣٤٥٦")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "otp_invalid"


def test_new_recovery_codes_keep_a_session_verified_with_a_recovery_code(client, bob, password):
    _, codes = enrol_second_factor(bob)
    sign_in(client, bob, password)
    enter_code(client, codes[0])
    renewed = client.post(
        reverse("two-factor-manage"), {"action": "regenerate", "password": password}
    )
    assert renewed.status_code == 200
    assert client.get("/").status_code == 200


def test_turning_on_a_second_factor_ends_api_sessions_opened_with_the_password_alone(
    client, api_client, bob, password, django_capture_on_commit_callbacks
):
    from conftest import token_for

    tokens = token_for(api_client, bob)
    client.force_login(bob)
    client.get(reverse("two-factor-setup"))
    device = AuthenticatorDevice.objects.get(user=bob, confirmed=False)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("two-factor-setup"), {"code": totp_code(device)})
    refreshed = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refreshed.status_code == 401


def test_an_organization_requiring_a_second_factor_ends_staff_api_sessions(
    api_client, api_as, acme, alice, carol, password, django_capture_on_commit_callbacks
):
    from conftest import token_for

    tokens = token_for(api_client, alice)
    admin = api_as(carol)
    with django_capture_on_commit_callbacks(execute=True):
        changed = admin.patch(
            "/api/v1/organization/", {"require_second_factor": True}, format="json"
        )
    assert changed.status_code == 200
    refreshed = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refreshed.status_code == 401


def test_an_authenticator_secret_that_no_longer_decrypts_leaves_recovery_codes_working(
    client, bob, password
):
    device, codes = enrol_second_factor(bob)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_authenticatordevice SET key = 'gAAAAAtampered' WHERE id = %s",
            [device.pk],
        )
    sign_in(client, bob, password)
    refused = enter_code(client, "123456")
    assert refused.status_code == 400  # a clear message naming the field, not a crash
    assert "Cannot decrypt authenticator app “key”" in refused.content.decode()
    assert enter_code(client, codes[1]).status_code == 302


def test_signed_in_is_recorded_only_when_the_second_factor_is_accepted(client, bob, password):
    device, _ = enrol_second_factor(bob)
    AuditEvent.objects.all().delete()

    sign_in(client, bob, password)
    enter_code(client, "000000" if totp_code(device) != "000000" else "111111")
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["auth.password_accepted", "auth.login_failed"]  # not signed in

    enter_code(client, totp_code(device))
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions[-1] == "auth.login"
    assert actions.count("auth.login") == 1
