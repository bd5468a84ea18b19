"""`manage.py seed_demo` gives a newcomer a populated product; twice changes nothing."""

import io

import pytest
from django.core.management import call_command

from accounts.models import Organization, Team, User
from knowledge.models import Document

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_prints_the_sign_ins():
    first = io.StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=io.StringIO())

    assert Organization.objects.count() == 1
    assert Team.objects.count() == 2
    assert User.objects.count() == 5  # an organization admin, a manager, three learners
    assert Document.objects.count() == 5
    assert set(Document.objects.values_list("format", flat=True)) == {
        "html", "text", "pdf", "docx",
    }  # fmt: skip
    assert "manager@demo.avataradam.local" in first.getvalue()
    assert "demo-manager-2026" in first.getvalue()
    manager = User.objects.get(email="manager@demo.avataradam.local")
    assert manager.is_staff
    # The demo manager is asked to set up a second factor on first sign-in.
    assert manager.organization.require_second_factor
    assert "two-factor" in first.getvalue()
    assert manager.check_password("demo-manager-2026")


def test_every_demo_document_ingests(django_capture_on_commit_callbacks):
    from knowledge import services
    from knowledge.models import DocumentStatus

    call_command("seed_demo", stdout=io.StringIO())
    for document in Document.objects.all():
        services.ingest_document(document.pk)
        document.refresh_from_db()
        assert document.status == DocumentStatus.READY, (document.title, document.error)
        assert document.chunk_count > 0
    pdf = Document.objects.get(format="pdf")
    assert pdf.page_count > 1


def test_the_demo_has_a_finished_voice_session_with_delivery_feedback():
    from training.delivery import delivery_of
    from training.models import TrainingSession

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    voice = TrainingSession.objects.get(channel="voice")
    assert voice.status == "ended"
    assert voice.scenario.voice == "joe"
    assert voice.evaluation.status == "ready"
    assert voice.messages.filter(interrupted=True).count() == 1
    delivery = delivery_of(voice)
    assert delivery is not None
    assert delivery.words_per_minute
