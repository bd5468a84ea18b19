import pytest

from accounts.tests.factories import OrganizationFactory, UserFactory
from training import sessions
from training.tests.factories import make_scenario

LONG_OBJECTION = (
    "Your price is thirty percent higher than what we pay today, and honestly I do not see "
    "what we would get for the extra money, so tell me why we should even consider it."
)


@pytest.fixture
def voice_session(transactional_db):
    # transactional: Channels closes "old" connections around each database call, which
    # would close a test transaction's connection.
    organization = OrganizationFactory()
    learner = UserFactory(organization=organization)
    objections = f"{LONG_OBJECTION}\n{LONG_OBJECTION}\n{LONG_OBJECTION}"
    scenario = make_scenario(organization, persona_objections=objections)
    return sessions.start_session(actor=learner, scenario_id=scenario.pk, channel="voice")
