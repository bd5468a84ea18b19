"""The API documentation in a real browser, under the site's Content Security Policy:
Swagger UI lists the operations and runs one ("Try it out"), Redoc renders, nothing is
refused by the policy, and a signed-out person is sent to sign in."""

import pytest
from rest_framework.test import APIClient

from conftest import token_for
from training.tests.factories import make_scenario
from training.tests.test_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _refused(page):
    return [e for e in page.console_errors if "Content Security Policy" in e or "Refused" in e]


def test_swagger_lists_the_operations_and_tries_one_out(page, alice, acme, password):
    make_scenario(acme, title="Renewal call")
    sign_in(page, alice.email, password)

    page.goto("/api/v1/docs/")
    operation = page.locator(".opblock-get").filter(has_text="/api/v1/scenarios/").first
    operation.wait_for(timeout=20_000)
    assert page.locator(".opblock").count() > 20
    # Authorize with a token, as an API client would (the API takes no session cookie).
    access = token_for(APIClient(), alice)["access"]
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".auth-container").filter(has_text="jwtAuth")
    dialog.locator("input").fill(access)
    dialog.locator("button.authorize").click()
    page.locator(".auth-btn-wrapper .btn-done").first.click()
    operation.locator(".opblock-summary").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    status = page.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=10_000)
    assert status.inner_text().strip() == "200"
    assert "Renewal call" in page.locator(".live-responses-table").inner_text()
    page.screenshot(path="/tmp/swagger.png")
    assert _refused(page) == []


def test_redoc_renders_the_reference(page, alice, password):
    sign_in(page, alice.email, password)

    page.goto("/api/v1/redoc/")
    heading = page.get_by_role("heading", name="Scenarios you can start (managers also see drafts)")
    heading.first.wait_for(timeout=20_000)
    page.screenshot(path="/tmp/redoc.png")
    assert _refused(page) == []


def test_a_signed_out_person_is_sent_to_sign_in_and_back(page, alice, password):
    page.goto("/api/v1/docs/")
    page.get_by_label("Email").wait_for()
    assert "/login/" in page.url
    assert "next=/api/v1/docs/" in page.url
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.locator(".opblock").first.wait_for(timeout=20_000)
    assert page.url.endswith("/api/v1/docs/")
