"""Signing in, in a real browser (Playwright driving Debian's Chromium)."""

import pytest

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
