"""One refusal type: message, code, status, close code; Django's errors read as refusals."""

from django.core.exceptions import PermissionDenied, ValidationError

from core.errors import Refused, as_refused


def test_a_refusal_carries_its_message_code_status_and_close_code():
    refused = Refused("Wait for the reply before sending another message.", status=409)
    assert (refused.message, refused.code, refused.status) == (
        "Wait for the reply before sending another message.", "conflict", 409)  # fmt: skip
    assert refused.close_code == 4409
    assert Refused("Too fast.", status=429, code="slow_down").code == "slow_down"


def test_djangos_own_errors_keep_their_message_as_refusals():
    denied = as_refused(PermissionDenied("Only managers can assign training."))
    assert (denied.status, denied.message) == (403, "Only managers can assign training.")
    invalid = as_refused(ValidationError({"email": ["Enter a valid email address."]}))
    assert invalid.status == 400
    assert invalid.fields == {"email": ["Enter a valid email address."]}
    assert as_refused(KeyError("x")) is None
