"""Signing in, in a real browser (Playwright driving Debian's Chromium)."""

from pathlib import Path

import pytest

from conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, email, password):
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_manager_signs_in_and_opens_the_admin(page, alice, acme_team, password):
    sign_in(page, alice.email, password)

    page.get_by_role("heading", name=f"Welcome, {alice.full_name}").wait_for()
    assert "Acme" in page.content()
    page.get_by_role("link", name="Open the admin").click()
    page.get_by_role("link", name="Users").first.click()
    page.get_by_text("bob@acme.test").wait_for()
    assert "mallory" not in page.content()
    assert page.console_errors == []


def test_a_wrong_password_shows_one_plain_message(page, bob):
    sign_in(page, bob.email, "not-my-password")
    alert = page.get_by_role("alert")
    assert "Those sign-in details are not right." in alert.inner_text()
    assert page.console_errors == []


def code_from_shown_secret(secret, steps_from_now=0):
    """What an authenticator app computes from the key typed in by hand."""
    import base64

    from django_otp.oath import TOTP

    compact = secret.replace(" ", "")
    key = base64.b32decode(compact + "=" * (-len(compact) % 8))
    totp = TOTP(key, step=30, digits=6)
    totp.drift = steps_from_now
    return f"{totp.token():06d}"


def sign_out(page):
    page.get_by_role("button", name="Sign out").first.click()
    page.get_by_role("heading", name="Sign in").wait_for()


def enter_code(page, code):
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Verify").click()


def test_a_manager_enrols_a_second_factor_and_signs_in_with_codes(page, acme, alice, password):
    acme.require_second_factor = True
    acme.save()

    # The organization requires it: after the password comes enrolment, nothing else.
    sign_in(page, alice.email, password)
    page.get_by_role("heading", name="Set up two-factor sign-in").wait_for()
    assert page.locator(".qr svg").count() == 1
    secret = page.locator("#totp-secret").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "two_factor_setup.png"), full_page=True)
    page.get_by_label("Code from the app").fill(code_from_shown_secret(secret))
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Two-factor sign-in is on").wait_for()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    with page.expect_download() as download:
        page.get_by_role("link", name="Download them as a text file").click()
    saved = Path(download.value.path()).read_text()
    assert saved.split() == codes
    assert download.value.suggested_filename == "avatar-adam-recovery-codes.txt"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy the codes").click()
    page.get_by_text("Copied 10 codes.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()").split() == codes
    page.get_by_role("link", name="I have saved them, continue").click()
    page.get_by_role("heading", name=f"Welcome, {alice.full_name}").wait_for()

    # Password + code (the next step's code: the enrolment code is used up).
    sign_out(page)
    sign_in(page, alice.email, password)
    page.get_by_role("heading", name="Two-factor sign-in").wait_for()
    enter_code(page, code_from_shown_secret(secret, +1))
    page.get_by_role("heading", name=f"Welcome, {alice.full_name}").wait_for()

    # Password + a recovery code, which then no longer works.
    sign_out(page)
    sign_in(page, alice.email, password)
    enter_code(page, codes[0])
    page.get_by_role("heading", name=f"Welcome, {alice.full_name}").wait_for()
    assert "9 left" in page.content()
    sign_out(page)
    sign_in(page, alice.email, password)
    enter_code(page, codes[0])
    alert = page.get_by_role("alert")
    assert "That code is not right" in alert.inner_text()
    # The only errors are the refused code's 400 (the response and Chromium's note of it).
    assert f"400 {page.url}" in page.console_errors
    assert all("400" in error for error in page.console_errors)


def test_an_organization_admin_reads_and_filters_the_audit_log(page, carol, alice, password):
    from accounts import services
    from accounts.models import ApiKey

    services.create_api_key(actor=alice, name="CRM sync " + "x" * 80)
    services.revoke_api_key(actor=alice, api_key_id=ApiKey.objects.get().pk)
    sign_in(page, carol.email, password)
    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("heading", name="Audit log").wait_for()
    assert page.get_by_text("API key revoked").count() >= 1
    # The page fits the window: long changes wrap instead of pushing the layout sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.get_by_label("Action").select_option("apikey.revoked")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit/?*")
    assert page.locator("table.audit tbody tr").count() == 1
    assert page.console_errors == []
