"""No user or API key of one organization can reach another organization's objects.

Walks every URL pattern that takes an object id. A new URL with an id that this test does
not know fails it until it is mapped to its model below, so coverage grows with the app.
"""

import pytest
from django.apps import apps
from django.urls import reverse

from accounts import access, audit
from accounts.models import (
    ApiKey,
    AuditEvent,
    Organization,
    OrganizationNotice,
    ProviderCredential,
    Team,
    User,
)
from accounts.tests.factories import TeamFactory, UserFactory, make_api_key
from avatar_adam.tests.url_walk import walk
from knowledge import services
from knowledge.models import Chunk, Document
from knowledge.tests.factories import upload
from training import sessions
from training.models import Assignment, Evaluation, Message, RubricItem, Scenario, TrainingSession
from training.tests.factories import make_scenario
from voice.models import AvatarSession, VoiceCall

pytestmark = pytest.mark.django_db

# URL names (non-admin) whose parameter is an object id, and the model it names.
ID_URLS = {
    "api-key-detail": ApiKey,
    "api-team-detail": Team,
    "api-user-detail": User,
    "api-document-detail": Document,
    "api-document-reingest": Document,
    "api-session-detail": TrainingSession,
    "api-session-end": TrainingSession,
    "api-message-create": TrainingSession,
    "api-evaluation": TrainingSession,
    "api-message-list": TrainingSession,
    "api-scenario-detail": Scenario,
    "api-assignment-detail": Assignment,
    "api-voice-ticket": TrainingSession,
}
# Page URLs (session sign-in) whose parameter is an object id, and the model it names.
PAGE_ID_URLS = {
    "knowledge:document-row": Document,
    "knowledge:reingest": Document,
    "knowledge:delete": Document,
    "knowledge:download": Document,
    "training:start": Scenario,
    "training:session": TrainingSession,
    "training:post-message": TrainingSession,
    "training:end": TrainingSession,
    "training:debrief": TrainingSession,
    "training:reply-stream": TrainingSession,
    "training:cited-passage": TrainingSession,
}
# URL names with parameters that are not organization objects.
NOT_OBJECT_URLS = {
    "password_reset_confirm",  # signed token, not an id
    "admin:app_list",  # app label
    "admin:view_on_site",  # resolves through the model's own admin
}


def foreign_object(model, globex):
    """An object of `model` that belongs to Globex (the other organization)."""
    makers = {
        Organization: lambda: globex,
        User: lambda: UserFactory(organization=globex),
        Team: lambda: TeamFactory(organization=globex),
        ApiKey: lambda: make_api_key(globex)[0],
        Document: lambda: globex_document(globex),
        Chunk: lambda: globex_document(globex, ingest=True).chunks.first(),
        Scenario: lambda: make_scenario(globex),
        RubricItem: lambda: make_scenario(globex).rubric_items.first(),
        Assignment: lambda: Assignment.objects.create(
            organization=globex,
            scenario=make_scenario(globex),
            team=TeamFactory(organization=globex),
        ),
        TrainingSession: lambda: globex_session(globex),
        Message: lambda: globex_session(globex).messages.first(),
        Evaluation: lambda: Evaluation.objects.create(session=globex_session(globex)),
        AuditEvent: lambda: audit.record(
            "apikey.created", actor=UserFactory(organization=globex, role="admin")
        ),
        VoiceCall: lambda: VoiceCall.objects.create(
            organization=globex,
            session=(session := globex_session(globex)),
            learner=session.learner,
        ),
        AvatarSession: lambda: AvatarSession.objects.create(
            organization=globex,
            session=globex_session(globex),
            provider="liveavatar",
            provider_session_id="globex-avatar-session",
        ),
        OrganizationNotice: lambda: OrganizationNotice.objects.create(
            organization=globex, kind="knowledge_limit", message="Globex is full."
        ),
        ProviderCredential: lambda: ProviderCredential.objects.get_or_create(
            organization=globex, service="llm", defaults={"api_key": "sk-globex-secret"}
        )[0],
    }
    if model not in makers:
        pytest.fail(f"No Globex object maker for {model.__name__}: add one to foreign_object().")
    return makers[model]()


def globex_document(globex, ingest=False):
    owner = UserFactory(organization=globex, role="manager")
    document = upload(owner, b"Globex secret pricing: 40% off for friends.", "secret.txt")
    if ingest:
        services.ingest_document(document.pk)
    return document


def globex_session(globex):
    learner = UserFactory(organization=globex)
    return sessions.start_session(actor=learner, scenario_id=make_scenario(globex).pk)


def admin_model(route):
    """'admin/accounts/user/<path:object_id>/change/' -> User (None if not a model URL)."""
    parts = route.route.split("/")
    if len(parts) < 4 or parts[0] != "admin":
        return None
    try:
        return apps.get_model(parts[1], parts[2])
    except (LookupError, ValueError):
        return None


def is_admin(route):
    return route.route.startswith("admin/")


def id_routes():
    routes = []
    for route in walk():
        if not route.params or route.name in NOT_OBJECT_URLS:
            continue
        if route.route == "admin/(?P<url>.*)$":  # the admin's catch-all "not found" view
            continue
        routes.append(route)
    return routes


def scoped_admin_routes():
    """Admin object URLs of organization data (other admin models are operator-only)."""
    registered = set(access.registered_models())
    return [r for r in id_routes() if is_admin(r) and admin_model(r) in registered]


def test_every_url_with_an_object_id_is_known_to_this_test():
    unknown = []
    for route in id_routes():
        if is_admin(route):
            if admin_model(route) is None:
                unknown.append(route.route)
        elif route.name not in ID_URLS and route.name not in PAGE_ID_URLS:
            unknown.append(f"{route.route} ({route.name})")
    assert not unknown, f"Map these URLs to their model in ID_URLS: {unknown}"


def test_admin_models_outside_the_policy_are_for_operators_only(client, alice):
    from django.contrib import admin

    client.force_login(alice)
    registered = set(access.registered_models())
    for model in admin.site._registry:
        if model in registered:
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 403, url


def test_every_registered_model_has_a_foreign_object_maker(globex):
    for model in access.registered_models():
        assert foreign_object(model, globex) is not None


@pytest.mark.parametrize("actor_name", ["alice", "bob", "api_key"])
def test_api_routes_answer_404_for_another_organizations_objects(
    actor_name, api_client, api_as, alice, bob, acme, globex
):
    if actor_name == "api_key":
        client = api_client
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_api_key(acme)[1]}")
    else:
        client = api_as({"alice": alice, "bob": bob}[actor_name])
    checked = 0
    for route in id_routes():
        if route.name not in ID_URLS:
            continue
        target = foreign_object(ID_URLS[route.name], globex)
        missing_url = reverse(route.name, kwargs={route.params[0]: 987654321})
        url = reverse(route.name, kwargs={route.params[0]: target.pk})
        for method in ("get", "put", "patch", "delete", "post"):
            response = getattr(client, method)(url, {}, format="json")
            missing = getattr(client, method)(missing_url, {}, format="json")
            assert response.status_code in (403, 404, 405), (method, url, response.status_code)
            assert response.status_code == missing.status_code, (method, url)
            if response.status_code == 404:
                assert response.json()["error"]["message"] == missing.json()["error"]["message"]
        checked += 1
        assert target.__class__.objects.filter(pk=target.pk).exists()
    assert checked == len(ID_URLS)


def test_foreign_api_keys_stay_unrevoked(api_as, alice, globex):
    foreign, _ = make_api_key(globex)
    api_as(alice).delete(reverse("api-key-detail", kwargs={"pk": foreign.pk}))
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_admin_routes_treat_another_organizations_objects_as_missing(client, alice, globex):
    client.force_login(alice)
    checked = 0
    for route in scoped_admin_routes():
        target = foreign_object(admin_model(route), globex)
        param = route.params[0]
        url = "/" + route.route.replace(f"<path:{param}>", str(target.pk)).replace(
            f"<{param}>", str(target.pk)
        )
        missing_url = url.replace(f"/{target.pk}/", "/987654321/")
        response = client.get(url)
        missing = client.get(missing_url)
        assert response.status_code == missing.status_code, url
        assert response.status_code in (302, 403, 404), (url, response.status_code)
        if response.status_code == 302:
            # Same place as for a missing id (the bare-id route only redirects to /change/).
            location = response["Location"].replace(f"/{target.pk}/", "/987654321/")
            assert location == missing["Location"], url
        assert str(target.pk) not in response.content.decode() or response.status_code != 200
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("actor_name", ["alice", "bob"])
def test_pages_answer_404_for_another_organizations_objects(client, actor_name, alice, bob, globex):
    client.force_login({"alice": alice, "bob": bob}[actor_name])
    checked = 0
    for route in id_routes():
        if route.name not in PAGE_ID_URLS:
            continue
        target = foreign_object(PAGE_ID_URLS[route.name], globex)
        kwargs = {route.params[0]: target.pk}
        if len(route.params) > 1:  # a message inside the session
            kwargs[route.params[1]] = target.messages.first().pk
        if len(route.params) > 2:  # the first source that message cites
            kwargs[route.params[2]] = 1
        url = reverse(route.name, kwargs=kwargs)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            # learners are refused before any lookup; managers get "not found"
            assert response.status_code in (403, 404, 405), (method, url, response.status_code)
            if actor_name == "alice" and response.status_code != 405:
                assert response.status_code == 404, (method, url)
        assert target.__class__.objects.filter(pk=target.pk).exists()
        checked += 1
    assert checked == len(PAGE_ID_URLS)
