from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from django.conf import settings

        from accounts import access, audit, connection_tests
        from accounts.models import ProviderService
        from core.connection_check import openai_compatible
        from training import schema_examples  # noqa: F401 - registers API examples
        from training.models import (
            Assignment,
            Evaluation,
            Message,
            RubricItem,
            Scenario,
            TrainingSession,
        )

        connection_tests.register(ProviderService.LLM, openai_compatible(settings.LLM_BASE_URL))
        access.register(Scenario, learners="all")
        access.register(RubricItem, organization="scenario__organization_id", learners="all")
        access.register(Assignment, learners="none")
        access.register(TrainingSession, owner="learner_id")
        access.register(
            Message, organization="session__organization_id", owner="session__learner_id"
        )
        access.register(
            Evaluation, organization="session__organization_id", owner="session__learner_id"
        )
        audit.register_actions(
            {
                "scenario.published": "Scenario published",
                "scenario.deleted": "Scenario deleted",
                "assignment.created": "Assignment created",
                "assignment.updated": "Assignment changed",
                "assignment.deleted": "Assignment removed",
            }
        )
