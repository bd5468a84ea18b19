from django.utils import timezone

from training import sessions
from training.models import (
    Evaluation,
    EvaluationStatus,
    RubricItem,
    Scenario,
    ScenarioMode,
    SessionStatus,
)


def make_scenario(organization, *, mode=ScenarioMode.ROLEPLAY, published=True, **fields):
    defaults = {
        "title": "Renewal call",
        "summary": "A customer considers leaving.",
        "persona_name": "Dana",
        "persona_role": "CTO",
        "persona_hidden_motivations": "Wants faster incident response.",
        "persona_objections": "Your price is 30% higher.\nYour support was slow last time.",
        "persona_opening_line": "I'm not sure we're renewing. Convince me.",
    }
    defaults.update(fields)
    scenario = Scenario.objects.create(
        organization=organization, mode=mode, published=published, **defaults
    )
    RubricItem.objects.create(
        scenario=scenario,
        name="Discovers the real concern",
        good_looks_like="Asks open questions about goals and incidents before pitching.",
        weight=2,
    )
    RubricItem.objects.create(
        scenario=scenario,
        name="Agrees a next step",
        good_looks_like="Proposes a concrete next step with a date, such as a review call.",
        weight=1,
    )
    return scenario


def graded_session(learner, scenario, score, ended=True):
    """A session of `learner`, ended and graded `score` (or still open)."""
    session = sessions.start_session(actor=learner, scenario_id=scenario.pk)
    if ended:
        session.status = SessionStatus.ENDED
        session.ended_at = timezone.now()
        session.save()
        Evaluation.objects.create(session=session, status=EvaluationStatus.READY, overall=score)
    return session
