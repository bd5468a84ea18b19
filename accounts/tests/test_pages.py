"""Signing in and out of the pages, password change and reset, lockout."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def sign_in(client, email, password):
    return client.post(reverse("login"), {"username": email, "password": password})


def test_a_learner_signs_in_and_sees_their_organization_and_teams(client, bob, acme_team, password):
    response = sign_in(client, "BOB@acme.test", password)
    assert response.status_code == 302
    page = client.get(reverse("home")).content.decode()
    assert "Acme" in page
    assert "Field Sales" in page
    assert "Open the admin" not in page


def test_a_wrong_password_and_an_unknown_email_get_the_same_message(client, bob):
    wrong = sign_in(client, bob.email, "nope").content.decode()
    unknown = sign_in(client, "ghost@acme.test", "nope").content.decode()
    message = "Those sign-in details are not right."
    assert message in wrong
    assert message in unknown


def test_the_sixth_wrong_password_blocks_sign_in_with_a_clear_message(client, bob, password):
    for _ in range(5):
        assert sign_in(client, bob.email, "nope").status_code == 200
    sixth = sign_in(client, bob.email, "nope")
    assert sixth.status_code == 429
    assert "Too many failed sign-in attempts" in sixth.content.decode()
    assert sign_in(client, bob.email, password).status_code == 429


def test_signing_out_ends_the_session(client, bob, password):
    sign_in(client, bob.email, password)
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


def test_password_reset_sends_a_working_link_and_reveals_nothing(client, bob):
    response = client.post(reverse("password_reset"), {"email": bob.email})
    assert response.status_code == 302
    unknown = client.post(reverse("password_reset"), {"email": "ghost@acme.test"})
    assert unknown["Location"] == response["Location"]
    assert len(mail.outbox) == 1

    link = re.search(r"https?://[^/]+(/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "fresh-passphrase-42", "new_password2": "fresh-passphrase-42"}
    )
    assert done.status_code == 302
    assert sign_in(Client(), bob.email, "fresh-passphrase-42").status_code == 302


def test_changing_the_password_signs_out_other_sessions(client, bob, password):
    other_device = Client()
    sign_in(other_device, bob.email, password)
    sign_in(client, bob.email, password)

    client.post(
        reverse("password_change"),
        {
            "old_password": password,
            "new_password1": "another-passphrase-77",
            "new_password2": "another-passphrase-77",
        },
    )

    assert client.get(reverse("home")).status_code == 200
    assert other_device.get(reverse("home")).status_code == 302


def test_a_manager_is_offered_the_admin_and_can_open_it(client, alice, password):
    sign_in(client, alice.email, password)
    assert "Open the admin" in client.get(reverse("home")).content.decode()
    assert client.get(reverse("admin:index")).status_code == 200


def test_signing_in_to_ones_own_account_does_not_clear_the_ip_count(
    client, alice, bob, carol, password
):
    for _ in range(5):
        sign_in(client, carol.email, "guess")  # five guesses at someone else
    assert sign_in(client, bob.email, password).status_code == 302  # the guesser's own account
    client.post(reverse("logout"))
    assert sign_in(client, alice.email, "guess").status_code == 429  # sixth from this IP
