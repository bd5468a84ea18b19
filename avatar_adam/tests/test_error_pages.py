"""Pages that fail say so in the site's own style, and a page's HTMX request that needs a
sign-in sends the whole page to sign in (not a sign-in form swapped into a corner)."""

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from training import sessions
from training.tests.factories import make_scenario

pytestmark = pytest.mark.django_db


def test_a_missing_page_is_the_sites_own_page(client, bob):
    client.force_login(bob)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "We could not find that page" in page
    assert "Back to your dashboard" in page
    assert 'class="topnav"' in page  # the usual navigation, signed in


def test_a_forbidden_page_is_the_sites_own_page_with_the_reason(client, bob):
    client.force_login(bob)  # a learner
    response = client.get(reverse("audit-log"), HTTP_ACCEPT="text/html")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Only organization admins" in page
    assert 'class="topnav"' in page
    # Django's own refusals (no reason given) use the site's page too.
    assert "You cannot open this page" in render_to_string("403.html")


def test_the_server_error_page_needs_nothing_from_the_failed_request():
    page = render_to_string("500.html")  # Django renders it with an empty context
    assert "Something went wrong on our side" in page
    assert "css/app.css" in page


def test_an_htmx_request_after_the_session_expired_sends_the_page_to_sign_in(client, bob, acme):
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    url = reverse("training:debrief", args=[session.pk])

    response = client.get(url, HTTP_HX_REQUEST="true")  # signed out (expired)

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('login')}?next={url}"
    assert response.content == b""
    plain = client.get(url)  # a page load is redirected as before
    assert plain.status_code == 302
    assert "HX-Redirect" not in plain
