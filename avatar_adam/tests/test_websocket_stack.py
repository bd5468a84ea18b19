"""The production ASGI stack in front of the voice socket: the Origin policy and the
session cookie (voice/tests has the consumer's own rules)."""

import json

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.tests.factories import OrganizationFactory, UserFactory
from avatar_adam.websocket_urls import websocket_urlpatterns
from core.websocket import OriginPolicy
from training import sessions
from training.tests.factories import make_scenario
from training.tests.run_turns import run

# avatar_adam.asgi's stack (importing that module checks the encryption keys and closes
# every database connection, the test's included).
application = OriginPolicy(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


@pytest.fixture
def voice_session(transactional_db):
    organization = OrganizationFactory()
    learner = UserFactory(organization=organization)
    scenario = make_scenario(organization)
    return sessions.start_session(actor=learner, scenario_id=scenario.pk, channel="voice")


def test_the_full_asgi_stack_checks_the_origin_and_reads_the_session_cookie(voice_session):
    learner = voice_session.learner
    browser = Client()
    browser.force_login(learner)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    path = f"/ws/sessions/{voice_session.pk}/voice/"

    async def connect(origin):
        headers = [(b"cookie", cookie)] + ([(b"origin", origin)] if origin else [])
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=20)
        first = (
            json.loads((await communicator.receive_output(timeout=20)).get("text") or "{}")
            if connected
            else {}
        )
        await communicator.disconnect()
        return connected, first

    connected, ready = run(connect(b"http://localhost"))
    assert connected
    assert ready["type"] == "session.ready"
    connected, _ = run(connect(b"https://evil.example"))
    assert not connected, "a foreign page's socket is refused at the handshake"
