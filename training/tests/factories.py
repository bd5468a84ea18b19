from training.models import RubricItem, Scenario, ScenarioMode


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
