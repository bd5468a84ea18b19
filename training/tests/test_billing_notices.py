"""A provider account out of credit is a billing problem the organization's admins are told
about: one email a day at most, and a notice on their home page until dismissed."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import NoticeKind, OrganizationNotice, ProviderCredential, Role
from accounts.tests.factories import UserFactory
from knowledge.tests.openai_wire import Fail, OpenAIWireServer
from training import debriefs, sessions
from training.models import EvaluationStatus, MessageStatus
from training.tests.chat_wire import add_chat
from training.tests.factories import make_scenario
from training.tests.run_turns import finish_reply

pytestmark = pytest.mark.django_db

OUT_OF_CREDIT = Fail(
    429,
    "You exceeded your current quota, please check your plan and billing details.",
    type="insufficient_quota",
    code="insufficient_quota",
    retry_after="0",
)


@pytest.fixture
def hosted(settings):
    with OpenAIWireServer() as wire:
        wire.chat = add_chat(wire)
        settings.LLM_PROVIDER = "openai"
        settings.LLM_BASE_URL = wire.base_url
        settings.LLM_MAX_RETRIES = 0
        yield wire


@pytest.fixture
def globex_admin(globex):
    return UserFactory(email="gina@globex.test", organization=globex, role=Role.ADMIN)


def say(learner, session, text, capture):
    posted = sessions.post_message(actor=learner, session_id=session.pk, text=text)
    with capture(execute=True):  # the email goes once the notice is committed
        finish_reply(posted.reply.pk)
    posted.reply.refresh_from_db()
    return posted.reply


def home_of(client, user):
    client.force_login(user)
    return client.get(reverse("home")).content.decode()


NOTICE_TITLE = "Language model out of credit"


def test_out_of_credit_emails_the_admin_once_and_shows_a_notice_on_their_home_page(
    client, hosted, bob, acme, carol, alice, globex_admin, django_capture_on_commit_callbacks
):
    hosted.script(OUT_OF_CREDIT, OUT_OF_CREDIT)
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)

    reply = say(bob, session, "Can we talk about value?", django_capture_on_commit_callbacks)

    assert reply.status == MessageStatus.INCOMPLETE
    assert "run out of credit" in reply.error
    assert len(hosted.requests) == 1  # not retried
    assert [message.to for message in mail.outbox] == [["carol@acme.test"]]
    email = mail.outbox[0]
    assert NOTICE_TITLE in email.subject
    assert "Acme" in email.subject
    assert "run out of credit" in email.body
    assert "platform's language model account" in email.body
    carol_home = home_of(client, carol)
    assert NOTICE_TITLE in carol_home
    assert "learners&#x27; replies and debriefs are failing" in carol_home

    # The same day, a second failure: the notice stays, no second email.
    again = say(bob, session, "Hello?", django_capture_on_commit_callbacks)

    assert again.status == MessageStatus.INCOMPLETE
    assert len(mail.outbox) == 1
    notice = OrganizationNotice.objects.get(organization=acme)
    assert (notice.kind, notice.occurrences) == (NoticeKind.LLM_CREDIT, 2)
    assert NOTICE_TITLE in home_of(client, carol)
    # Only the organization's admins: not its managers or learners, not other organizations.
    assert NOTICE_TITLE not in home_of(client, alice)
    assert NOTICE_TITLE not in home_of(client, bob)
    assert NOTICE_TITLE not in home_of(client, globex_admin)


def test_the_admin_dismisses_the_notice_and_a_repeat_the_same_day_sends_no_email(
    client, hosted, bob, acme, carol, django_capture_on_commit_callbacks
):
    hosted.script(OUT_OF_CREDIT, OUT_OF_CREDIT)
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    say(bob, session, "First.", django_capture_on_commit_callbacks)
    client.force_login(carol)

    response = client.post(
        reverse("dismiss-notice"), {"kind": NoticeKind.LLM_CREDIT}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert NOTICE_TITLE not in home_of(client, carol)
    say(bob, session, "Second.", django_capture_on_commit_callbacks)
    assert NOTICE_TITLE in home_of(client, carol)  # it happened again: shown again
    assert len(mail.outbox) == 1  # but emailed once today


def test_only_organization_admins_dismiss_notices(client, hosted, bob, acme, alice, carol,
                                                  django_capture_on_commit_callbacks):  # fmt: skip
    hosted.script(OUT_OF_CREDIT)
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    say(bob, session, "First.", django_capture_on_commit_callbacks)
    for user in (alice, bob):
        client.force_login(user)
        assert client.post(reverse("dismiss-notice"), {"kind": "llm_credit"}).status_code == 403
    assert OrganizationNotice.objects.get(organization=acme).closed_at is None


def test_with_its_own_key_the_admin_is_told_to_add_credit_to_that_account(
    settings, hosted, bob, acme, carol, django_capture_on_commit_callbacks
):
    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True  # the wire server is on 127.0.0.1
    ProviderCredential.objects.create(organization=acme, service="llm", api_key="sk-acme-own",
                                      base_url=hosted.base_url)  # fmt: skip
    hosted.script(OUT_OF_CREDIT)
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)

    say(bob, session, "Hello.", django_capture_on_commit_callbacks)

    assert hosted.requests[-1].headers["authorization"] == "Bearer sk-acme-own"
    assert "your organization's language model key" in mail.outbox[0].body


def test_a_debrief_refused_for_lack_of_credit_tells_the_admin_too(
    hosted, bob, acme, carol, django_capture_on_commit_callbacks
):
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    say(bob, session, "Our price is fair because of the support.",
        django_capture_on_commit_callbacks)  # fmt: skip
    sessions.end_session(actor=bob, session_id=session.pk)
    hosted.script(OUT_OF_CREDIT)

    with django_capture_on_commit_callbacks(execute=True):
        evaluation = debriefs.grade_session(session.pk)

    assert evaluation.status == EvaluationStatus.FAILED
    assert [message.to for message in mail.outbox] == [["carol@acme.test"]]
    assert OrganizationNotice.objects.get(organization=acme).kind == NoticeKind.LLM_CREDIT
