"""The manager's knowledge page in a real browser: upload, live progress, ask a question."""

from pathlib import Path

import pytest

from knowledge.tests import samples

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_uploads_watches_it_become_ready_and_asks_a_question(
    stack_page, alice, password, tmp_path
):
    """On the production stack (Daphne and a Celery worker): progress is pushed, so the
    row turns Ready well before the rows' own 20-second refresh could have done it."""
    page = stack_page
    page.goto("/login/")
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Knowledge", exact=True).click()
    page.get_by_role("heading", name="Knowledge base").wait_for()

    policy = Path(tmp_path) / "returns-policy.html"
    policy.write_text(samples.RETURNS_POLICY_HTML)
    picture = Path(tmp_path) / "photo.pdf"
    picture.write_bytes(samples.PNG_BYTES)
    page.set_input_files("#upload-files", [str(policy), str(picture)])
    page.get_by_text("photo.pdf: This is a PNG image.").wait_for()
    row = page.locator("tr.document-row", has_text="returns policy")
    row.wait_for()
    row.get_by_text("Ready").wait_for(timeout=15_000)

    page.get_by_label("Question").fill("can customers send back a product they bought?")
    page.get_by_role("button", name="Search").click()
    first = page.locator("#search-results article.passage").first
    first.wait_for()
    assert "30 days" in first.inner_text()
    assert "returns policy" in first.inner_text()
    assert page.locator("#search-results mark").count() > 0
    # the refused PNG is the only failed request (and its console line)
    unexpected = [e for e in page.console_errors if "415" not in e]
    assert unexpected == []
