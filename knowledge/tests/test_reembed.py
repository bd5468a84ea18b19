"""Changing the embedding model or dimension, then `manage.py reembed_knowledge`."""

import pytest
from django.core.management import call_command
from django.db import connection

from knowledge.models import Chunk
from knowledge.retrieval import retrieve_passages
from knowledge.tests import samples
from knowledge.tests.factories import ingested
from knowledge.tests.openai_wire import OpenAIWireServer
from knowledge.vector_index import current_dimensions, index_exists

pytestmark = pytest.mark.django_db


def test_switching_to_a_hosted_model_with_another_dimension_reembeds_everything(alice, settings):
    document = ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")
    assert current_dimensions(connection) == 384
    with connection.cursor() as cursor:
        # The test's own transaction still holds deferred FK checks of the rows it inserted;
        # a real run of the command starts with them committed.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    with OpenAIWireServer() as wire:
        settings.EMBEDDING_PROVIDER = "openai"
        settings.EMBEDDING_BASE_URL = wire.base_url
        settings.EMBEDDING_MODEL = "text-embedding-3-small"
        settings.EMBEDDING_DIMENSIONS = 8
        call_command("reembed_knowledge", stdout=open("/dev/null", "w"))

        assert current_dimensions(connection) == 8
        assert index_exists(connection)
        document.refresh_from_db()
        assert document.embedding_model == "openai/text-embedding-3-small@8"
        assert all(len(c.embedding) == 8 for c in Chunk.objects.filter(document=document))
        passages = retrieve_passages(
            organization_id=alice.organization_id, query="batteries", mode="vector"
        )
        assert passages
        assert len(wire.requests) >= 2  # the passages, then the question
