"""Organization notices: problems only the organization's admins can fix, told once a day
by email and shown on their home page until dismissed or resolved."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts import notices
from accounts.models import NoticeKind, OrganizationNotice, Role
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tell(django_capture_on_commit_callbacks):
    def tell(organization, kind=NoticeKind.KNOWLEDGE_LIMIT, message="The knowledge base is full."):
        with django_capture_on_commit_callbacks(execute=True):
            notices.notify_admins(organization_id=organization.pk, kind=kind, message=message)

    return tell


def test_each_admin_gets_their_own_email_and_managers_and_learners_none(tell, acme, carol, alice,
                                                                        bob):  # fmt: skip
    UserFactory(email="dana@acme.test", organization=acme, role=Role.ADMIN)
    UserFactory(email="gone@acme.test", organization=acme, role=Role.ADMIN, is_active=False)

    tell(acme)

    assert sorted(message.to[0] for message in mail.outbox) == [
        "carol@acme.test",
        "dana@acme.test",
    ]
    assert all(len(message.to) == 1 for message in mail.outbox)
    assert "The knowledge base is full." in mail.outbox[0].body


def test_an_organization_without_an_admin_tells_its_managers(tell, acme, alice, bob):
    tell(acme)
    assert [message.to for message in mail.outbox] == [["alice@acme.test"]]


def test_one_email_per_kind_a_day_and_the_notice_keeps_the_latest_message(tell, acme, carol):
    tell(acme, message="First.")
    tell(acme, message="Second.")
    tell(acme, kind=NoticeKind.LLM_CREDIT, message="No credit.")

    assert [message.body.split("\n")[0] for message in mail.outbox] == ["First.", "No credit."]
    notice = OrganizationNotice.objects.get(kind=NoticeKind.KNOWLEDGE_LIMIT)
    assert (notice.message, notice.occurrences) == ("Second.", 2)

    OrganizationNotice.objects.update(emailed_at=timezone.now() - timedelta(hours=25))
    tell(acme, message="Third.")
    assert mail.outbox[-1].body.startswith("Third.")
    assert len(mail.outbox) == 3


def test_a_resolved_notice_leaves_the_home_page(client, tell, acme, carol):
    tell(acme)
    client.force_login(carol)
    assert "Knowledge base limit reached" in client.get(reverse("home")).content.decode()

    notices.resolve_notices(organization_id=acme.pk, kind=NoticeKind.KNOWLEDGE_LIMIT)

    assert "Knowledge base limit reached" not in client.get(reverse("home")).content.decode()


def test_dismissing_without_htmx_returns_home_and_touches_no_other_organization(
    client, tell, acme, globex, carol
):
    tell(acme)
    tell(globex)
    client.force_login(carol)

    response = client.post(reverse("dismiss-notice"), {"kind": NoticeKind.KNOWLEDGE_LIMIT})

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert OrganizationNotice.objects.get(organization=acme).closed_by == carol
    assert OrganizationNotice.objects.get(organization=globex).closed_at is None


def test_a_mail_server_failure_does_not_fail_the_caller(tell, acme, carol, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1

    tell(acme)

    assert OrganizationNotice.objects.filter(organization=acme).exists()
