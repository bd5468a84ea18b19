from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        from django.conf import settings

        from accounts import access, audit, connection_tests, usage
        from accounts.models import ProviderService
        from core.connection_check import openai_compatible
        from knowledge import quotas, schema_examples  # noqa: F401 - registers API examples
        from knowledge.models import Chunk, Document

        connection_tests.register(
            ProviderService.EMBEDDINGS, openai_compatible(settings.EMBEDDING_BASE_URL)
        )
        access.register(Document, learners="none")
        access.register(Chunk, learners="none")
        usage.register(quotas.allowances)
        audit.register_actions(
            {"document.uploaded": "Document uploaded", "document.deleted": "Document deleted"}
        )
