"""schemathesis: every API operation, with authenticated generated requests, gives no 5xx
and no response that breaks the published schema."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, given, settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from knowledge.tests import samples
from knowledge.tests.factories import ingested
from training import sessions
from training.tests.factories import make_scenario

pytestmark = pytest.mark.django_db
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(db):
    from drf_spectacular.generators import SchemaGenerator

    return schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))


@pytest.fixture
def world(alice, bob, acme):
    """A manager with a document, a scenario, a session; returns the manager's headers."""
    ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")
    scenario = make_scenario(acme)
    sessions.start_session(actor=alice, scenario_id=scenario.pk)
    return {"Authorization": f"Bearer {RefreshToken.for_user(alice).access_token}"}


def test_no_operation_errors_or_breaks_its_schema(api_schema, world, settings_fixture):
    app = WSGIHandler()
    failures = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(case):
            response = case.call(app=app, headers=world)
            # What the contract promises: no 5xx, documented status codes and content
            # types, bodies that match the schema. (Semantic checks such as "valid-looking
            # data is accepted" do not apply: a well-formed random token is still invalid.)
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert operations >= 25
    assert not failures, "\n\n".join(failures)


@pytest.fixture
def settings_fixture(settings):
    # Throttles would turn generated bursts into 429s; posting replies waits for no worker.
    settings.API_REPLY_WAIT_SECONDS = 0.05
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from rest_framework.throttling import SimpleRateThrottle

    saved = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = {key: "100000/min" for key in saved}
    # As Django's test client does: keep the test's transaction open across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield settings
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    SimpleRateThrottle.THROTTLE_RATES = saved
