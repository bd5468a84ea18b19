"""Demo scenarios, assignments and one finished session with its debrief."""

from __future__ import annotations

from datetime import timedelta
from typing import TextIO

from django.utils import timezone

from accounts.models import Organization, Team, User
from training import debriefs, sessions
from training.models import (
    Assignment,
    Message,
    MessageRole,
    RubricItem,
    Scenario,
    ScenarioMode,
    TrainingSession,
)

RENEWAL = {
    "title": "Renewal call with a sceptical CTO",
    "summary": "Dana's company renews its support contract next month. She has a cheaper "
    "offer on the table and has not decided whether your premium support is worth it.",
    "mode": ScenarioMode.ROLEPLAY,
    "difficulty": 3,
    "persona_name": "Dana Whitfield",
    "persona_role": "CTO at Brightline Logistics",
    "persona_personality": "Direct, busy, data-driven; warms up when she hears specifics, "
    "cools down at vague promises.",
    "persona_background": "Runs a 40-person engineering team with a large Python code base; "
    "two production incidents last quarter took a day each to resolve.",
    "persona_hidden_motivations": "She must cut tooling spend by 15% before the board meeting, "
    "but what she really fears is another long outage; she will stay if you show faster "
    "incident response.",
    "persona_objections": "Honestly, a competitor quoted us 30% less for what looks like the "
    "same support.\nYour team took almost a day to answer our last incident; why should I "
    "pay more for that?\nI don't have time for a long migration or retraining my people.",
    "persona_opening_line": "Thanks for making time. I'll be straight with you: I'm not sure "
    "we're renewing. Convince me.",
    "learner_objectives": "Find out what really matters to Dana before pitching.\n"
    "Answer the price objection with value, not a discount.\n"
    "Agree on a concrete next step.",
    "time_limit_minutes": 15,
}
RENEWAL_RUBRIC = [
    ("Discovers the real concern", "Asks open questions about her goals, the incidents and "
     "what a failure costs before offering solutions.", 3),
    ("Handles the price objection", "Connects the price to value she cares about, such as "
     "faster incident response or less downtime, instead of discounting at once.", 3),
    ("Agrees a next step", "Proposes a concrete next step with a date, such as a review call "
     "or a trial of the incident service.", 2),
]  # fmt: skip
SUPPORT_DESK = {
    "title": "Python support desk: answer from the docs",
    "summary": "Customers ask about Python. Ask the trainer what you would need to answer them; "
    "it answers only from the knowledge base and cites its sources.",
    "mode": ScenarioMode.TRAINING,
    "difficulty": 2,
    "learner_objectives": "Find the documented answer to a customer's question.\n"
    "Check the cited source before passing it on.",
    "knowledge_collections": ["Python basics", "Tooling", "Platforms"],
    "time_limit_minutes": 20,
}
SUPPORT_RUBRIC = [
    ("Asks precise questions", "Asks specific questions a customer would ask, naming the "
     "task, the error or the platform.", 2),
    ("Checks the sources", "Follows up on the cited documents and asks for clarification "
     "when the answer is unclear.", 1),
]  # fmt: skip
FINISHED_CONVERSATION = [
    "Happy to. Before I say anything about price, can you tell me what went wrong in those "
    "incidents and what a day of downtime costs you?",
    "I understand the quote is lower. What matters more to you: the lowest price, or getting "
    "incidents fixed in under an hour?",
    "That delay was on us, and we changed it: premium support now has a one-hour response "
    "time for production incidents, with a named engineer.",
    "There is no migration at all; your team keeps working the way it does. Could we book a "
    "review call next Tuesday and start a two-week trial of the incident service?",
]


def _scenario(organization: Organization, fields: dict, rubric: list, manager: User) -> Scenario:
    scenario = (
        Scenario.objects.current().filter(organization=organization, title=fields["title"]).first()
    )
    if scenario:
        return scenario
    scenario = Scenario.objects.create(
        organization=organization, published=True, created_by=manager, **fields
    )
    for position, (name, good, weight) in enumerate(rubric):
        RubricItem.objects.create(
            scenario=scenario, name=name, good_looks_like=good, weight=weight, position=position
        )
    return scenario


def _finished_session(scenario: Scenario, learner: User, stdout: TextIO) -> None:
    if TrainingSession.objects.filter(learner=learner, scenario__family=scenario.family).exists():
        return
    session = sessions.start_session(actor=learner, scenario_id=scenario.pk)
    started = timezone.now() - timedelta(days=1, minutes=12)
    TrainingSession.objects.filter(pk=session.pk).update(started_at=started)
    for index, text in enumerate(FINISHED_CONVERSATION):
        Message.objects.create(session=session, role=MessageRole.LEARNER, text=text)
        reply = (
            scenario.objections[index]
            if index < len(scenario.objections)
            else "Alright, Tuesday works. Send me the details and we'll see how the trial goes."
        )
        Message.objects.create(
            session=session, role=MessageRole.PERSONA, text=reply, model="offline-stand-in"
        )
    sessions.end_session(actor=learner, session_id=session.pk)
    debriefs.grade_session(session.pk)
    stdout.write(f"  a finished session with its debrief for {learner.email}\n")


def seed(organization: Organization, manager: User, stdout: TextIO) -> None:
    renewal = _scenario(organization, RENEWAL, RENEWAL_RUBRIC, manager)
    support = _scenario(organization, SUPPORT_DESK, SUPPORT_RUBRIC, manager)
    for scenario, team_name, days in ((renewal, "Account Executives", 7),
                                      (support, "Support Desk", 10)):  # fmt: skip
        team = Team.objects.get(organization=organization, name=team_name)
        assignment, created = Assignment.objects.get_or_create(
            organization=organization,
            scenario=scenario,
            team=team,
            defaults={
                "due_at": timezone.now() + timedelta(days=days),
                "attempts_required": 2,
                "passing_score": 70,
                "created_by": manager,
            },
        )
        if created:  # assigned a few days ago, so the finished session below counts
            Assignment.objects.filter(pk=assignment.pk).update(
                created_at=timezone.now() - timedelta(days=3)
            )
    jordan = User.objects.get(email="jordan@demo.avataradam.local")
    _finished_session(renewal, jordan, stdout)
