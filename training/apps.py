from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from accounts import access, audit
        from training import schema_examples  # noqa: F401 - registers API examples
        from training.models import (
            Assignment,
            Evaluation,
            Message,
            RubricItem,
            Scenario,
            TrainingSession,
        )

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
