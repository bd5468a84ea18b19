"""schemathesis: every API operation, with authenticated generated requests, gives no 5xx
and no response that breaks the published schema; requests that break the schema (a
filter with no value, a string where a number goes) are refused, not quietly read."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from knowledge.tests import samples
from knowledge.tests.factories import ingested
from training import sessions
from training.tests.factories import make_scenario

pytestmark = pytest.mark.django_db
# What the contract promises: no 5xx, documented status codes, content types and
# headers, bodies that match the schema, and a 4xx for a request the schema forbids.
# (Semantic checks such as "valid-looking data is accepted" do not apply: a well-formed
# random token is still invalid.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Examples per operation and mode: about a minute for the whole run on two cores.
EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 12}
# Form encodings carry only text: schemathesis's type negations of a form body (an
# object or a number "becoming" a string) arrive as valid strings ("{}"), so it cannot
# tell a refused form body from a misread one. Only a case whose one invalid part is a
# form body is spared that check; JSON bodies, and every query, path and header
# parameter, are held to the schema.
FORM_BODIES = {"multipart/form-data", "application/x-www-form-urlencoded"}
FORM_BODY_CHECKS = [check for check in CHECKS if check is not negative_data_rejection]


def checks_for(case):
    negated = {place for place in case.meta.components if case.meta.is_negative_at(place)}
    if case.media_type in FORM_BODIES and negated == {ParameterLocation.BODY}:
        return FORM_BODY_CHECKS
    return CHECKS


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
        for mode, examples in EXAMPLES.items():
            # The caller's credentials are fixed, never generated (nor negated).
            strategy = operation.as_strategy(generation_mode=mode, headers=world)

            @given(case=strategy)
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def check(case):
                case.validate_response(case.call(app=app), checks=checks_for(case))

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in it to make invalid
            # Collect every operation's failure, then report them all (schemathesis
            # raises a BaseExceptionGroup when one case fails several checks).
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:800]}")
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
