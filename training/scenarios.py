"""Authoring scenarios: create, edit (a used or published one becomes version n+1),
delete. The pages, the API and the admin all call these."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from accounts import access, audit
from accounts.access import Actor
from training.errors import TrainingError
from training.models import (
    Assignment,
    Scenario,
    TrainingSession,
)
from training.selectors import needs_new_version
from training.voices import check_avatar_id, check_voice


@transaction.atomic
def save_new_version(scenario: Scenario, *, actor: Actor) -> Scenario:
    """Editing a published scenario that sessions have used: keep the old version as it was
    and save the edit as version n+1 (rubric and knowledge scope copied)."""
    original = Scenario.objects.select_for_update().get(pk=scenario.pk)
    rubric = list(original.rubric_items.all())
    documents = list(original.knowledge_documents.all())
    Scenario.objects.filter(pk=original.pk).update(is_current=False)
    scenario.pk = None
    scenario._state.adding = True
    scenario.version = original.version + 1
    scenario.is_current = True
    scenario.family = original.family
    scenario.created_by = actor if getattr(actor, "pk", None) else None
    scenario.save()
    for item in rubric:
        item.pk = None
        item.scenario = scenario
        item.save()
    scenario.knowledge_documents.set(documents)
    return scenario


SCENARIO_FIELDS = (
    "title", "summary", "mode", "difficulty", "persona_name", "persona_role",
    "persona_personality", "persona_background", "persona_hidden_motivations",
    "persona_objections", "persona_opening_line", "learner_objectives",
    "knowledge_collections", "voice", "avatar", "avatar_id", "llm_model", "time_limit_minutes",
    "published",
)  # fmt: skip


def _replace_rubric(scenario: Scenario, rubric: list[dict[str, object]]) -> None:
    from training.models import RubricItem

    scenario.rubric_items.all().delete()
    for position, item in enumerate(rubric):
        RubricItem.objects.create(
            scenario=scenario,
            name=item["name"],
            good_looks_like=item["good_looks_like"],
            weight=item.get("weight", 1),
            position=position,
        )


@transaction.atomic
def create_scenario(
    *, actor: Actor, data: dict[str, object], rubric: list[dict[str, object]]
) -> Scenario:
    """A new scenario of the actor's organization (managers only)."""
    if not access.is_manager(actor) or not actor.organization_id:
        raise PermissionDenied("Only managers of an organization can author scenarios.")
    check_voice(data.get("voice"))
    check_avatar_id(data.get("avatar_id"))
    scenario = Scenario.objects.create(
        organization_id=actor.organization_id,
        created_by=actor if getattr(actor, "pk", None) else None,
        **{key: value for key, value in data.items() if key in SCENARIO_FIELDS},
    )
    _replace_rubric(scenario, rubric)
    if scenario.published:
        audit.record("scenario.published", actor=actor, target=scenario,
                     changes={"title": scenario.title, "version": scenario.version})  # fmt: skip
    return scenario


@transaction.atomic
def update_scenario(
    *,
    actor: Actor,
    scenario_id: int,
    data: dict[str, object],
    rubric: list[dict[str, object]] | None,
) -> Scenario:
    """Edit a scenario; a published or already-used one becomes version n+1."""
    if not access.is_manager(actor):
        raise PermissionDenied("Only managers can edit scenarios.")
    scenario = access.access_or_404(actor, Scenario.objects.current(), pk=scenario_id)
    if "voice" in data:
        check_voice(data["voice"])
    if "avatar_id" in data:
        check_avatar_id(data["avatar_id"])
    was_published = scenario.published
    version_up = needs_new_version(scenario)
    for key, value in data.items():
        if key in SCENARIO_FIELDS:
            setattr(scenario, key, value)
    if version_up:
        scenario = save_new_version(scenario, actor=actor)
    else:
        scenario.save()
    if rubric is not None:
        _replace_rubric(scenario, rubric)
    if scenario.published and not was_published:
        audit.record("scenario.published", actor=actor, target=scenario,
                     changes={"title": scenario.title, "version": scenario.version})  # fmt: skip
    return scenario


@transaction.atomic
def delete_scenario(*, actor: Actor, scenario_id: int) -> None:
    """Delete a scenario (every version) that nobody has practised or been assigned.

    A scenario with sessions or assignments keeps its history: it is refused with 409,
    and unpublishing it hides it from learners instead.
    """
    if not access.is_manager(actor):
        raise PermissionDenied("Only managers can delete scenarios.")
    scenario = access.access_or_404(actor, Scenario.objects.current(), pk=scenario_id)
    family = Scenario.objects.select_for_update().filter(family=scenario.family)
    versions = list(family)  # locked until the end of the transaction
    used = (
        TrainingSession.objects.filter(scenario__family=scenario.family).exists()
        or Assignment.objects.filter(scenario__family=scenario.family).exists()
    )
    if used:
        raise TrainingError(
            "This scenario has sessions or assignments, so it is kept for their history. "
            "Unpublish it (published: false) to hide it from learners.",
            status=409,
        )
    audit.record("scenario.deleted", actor=actor, target=scenario,
                 changes={"title": scenario.title, "versions": len(versions)})  # fmt: skip
    Scenario.objects.filter(pk__in=[version.pk for version in versions]).delete()
