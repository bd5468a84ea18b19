"""An assignment goes to exactly one of a team or a learner (it used to be at least one).

Rows that have both are not guessed at: the migration stops and names them, and nothing
changes until someone decides whose each one is.
"""

from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def refuse_assignments_with_two_assignees(
    apps: StateApps, schema_editor: BaseDatabaseSchemaEditor
) -> None:
    Assignment = apps.get_model("training", "Assignment")
    both = Assignment.objects.filter(team__isnull=False, learner__isnull=False)
    neither = Assignment.objects.filter(team__isnull=True, learner__isnull=True)
    offending = sorted(both.values_list("pk", flat=True)) + sorted(
        neither.values_list("pk", flat=True)
    )
    if offending:
        shown = ", ".join(str(pk) for pk in offending[:50])
        more = f" and {len(offending) - 50} more" if len(offending) > 50 else ""
        raise CommandError(
            f"training.0003: {len(offending)} assignment(s) do not have exactly one of a team "
            f"or a learner (ids {shown}{more}). An assignment now goes to a team or to one "
            "learner: for each, clear the team or the learner (or assign it twice, once to "
            "each), then migrate again. Nothing was changed."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_scenario_llm_model"),
    ]

    operations = [
        migrations.RunPython(refuse_assignments_with_two_assignees, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="assignment",
            name="assignment_has_assignee",
        ),
        migrations.AddConstraint(
            model_name="assignment",
            constraint=models.CheckConstraint(
                condition=models.Q(team__isnull=False, learner__isnull=True)
                | models.Q(team__isnull=True, learner__isnull=False),
                name="assignment_has_one_assignee",
                violation_error_message="Assign to a team or to a learner (exactly one of them).",
            ),
        ),
    ]
