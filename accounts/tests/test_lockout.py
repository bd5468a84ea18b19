"""Reading the email a failed sign-in names, for the lockout count."""

from django.test import RequestFactory

from accounts.lockout import username_from_request


def test_the_email_is_read_from_a_json_body():
    request = RequestFactory().post(
        "/api/v1/auth/token/", '{"email": " Alice@Acme.test "}', content_type="application/json"
    )
    assert username_from_request(request, None) == "alice@acme.test"


def test_a_json_body_nested_too_deeply_names_no_one():
    request = RequestFactory().post(
        "/api/v1/auth/token/", "[" * 100_000, content_type="application/json"
    )
    assert username_from_request(request, None) == ""
