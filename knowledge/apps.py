from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        from accounts import access, audit, usage
        from knowledge import quotas, schema_examples  # noqa: F401 - registers API examples
        from knowledge.models import Chunk, Document

        access.register(Document, learners="none")
        access.register(Chunk, learners="none")
        usage.register(quotas.allowances)
        audit.register_actions(
            {"document.uploaded": "Document uploaded", "document.deleted": "Document deleted"}
        )
