"""OpenAPI examples for the training API (checked against the schema by a test)."""

from __future__ import annotations

from accounts.schema import register_examples

WHEN = "2026-11-25T09:30:00Z"
RUBRIC = [
    {"name": "Discovery", "good_looks_like": "Asks open questions about the customer's goals.",
     "weight": 2},
    {"name": "Handling objections", "good_looks_like": "Acknowledges the concern, then answers "
     "it with specifics.", "weight": 1},
]  # fmt: skip
SCENARIO = {
    "id": 5, "title": "Renewal call with a sceptical CTO",
    "summary": "The customer's CTO doubts the product is worth renewing.", "mode": "roleplay",
    "difficulty": 3, "version": 2, "published": True, "persona_name": "Dana Whitfield",
    "persona_role": "CTO at Contoso", "objectives": ["Find out what changed since last year"],
    "time_limit_minutes": 20, "voice": "", "avatar": "", "avatar_id": "", "rubric": RUBRIC,
}  # fmt: skip
SESSION = {
    "id": 41, "scenario": SCENARIO, "mode": "roleplay", "channel": "text", "status": "active",
    "is_preview": False, "started_at": WHEN, "expires_at": "2026-11-25T09:50:00Z",
    "ended_at": None, "ended_reason": "",
}  # fmt: skip
OPENING = {
    "id": 301, "role": "persona", "text": "Convince me. Why should we renew at this price?",
    "status": "complete", "error": "", "citations": [], "model": "", "prompt_tokens": None,
    "completion_tokens": None, "time_to_first_token_ms": None, "total_time_ms": None,
    "interrupted": False, "voice": {}, "created_at": WHEN,
}  # fmt: skip
LEARNER = {**OPENING, "id": 302, "role": "learner", "text": "What matters most to you?"}
REPLY = {**OPENING, "id": 303, "text": "Uptime. We lost two days in March.",
         "model": "openai/gpt-4o-mini", "prompt_tokens": 812, "completion_tokens": 11,
         "time_to_first_token_ms": 420, "total_time_ms": 690}  # fmt: skip
SCENARIO_WRITE = {
    "title": "Renewal call with a sceptical CTO", "mode": "roleplay", "difficulty": 3,
    "persona_name": "Dana Whitfield", "persona_role": "CTO at Contoso",
    "persona_objections": "The price went up\nWe had an outage in March",
    "persona_opening_line": "Convince me. Why should we renew at this price?",
    "learner_objectives": "Find out what changed since last year", "time_limit_minutes": 20,
    "published": True, "rubric": RUBRIC,
}  # fmt: skip
ASSIGNMENT = {
    "id": 17, "scenario": 5, "scenario_title": "Renewal call with a sceptical CTO", "team": 3,
    "learner": None, "due_at": "2026-12-01T17:00:00Z", "attempts_required": 2,
    "passing_score": 75, "created_at": WHEN,
}  # fmt: skip

register_examples({
    "Scenario": SCENARIO,
    "ScenarioWriteRequestRequest": SCENARIO_WRITE,
    "PatchedScenarioWriteRequestRequest": {"difficulty": 4, "published": True},
    "Assignment": ASSIGNMENT,
    "AssignmentCreateRequestRequest": {"scenario_id": 5, "team_id": 3,
                                       "due_at": "2026-12-01T17:00:00Z",
                                       "attempts_required": 2, "passing_score": 75},
    "PatchedAssignmentUpdateRequestRequest": {"due_at": "2026-12-08T17:00:00Z"},
    "Session": SESSION,
    "SessionDetail": {**SESSION, "messages": [OPENING]},
    "StartSessionRequestRequest": {"scenario_id": 5, "channel": "text"},
    "Message": REPLY,
    "PostMessageRequestRequest": {"text": "What matters most to you?"},
    "PostedMessage": {"learner_message": LEARNER, "reply": REPLY},
    "Evaluation": {
        "status": "ready", "overall": 78,
        "rubric_scores": [{"name": "Discovery", "score": 85, "weight": 2,
                           "evidence": ["What matters most to you?"],
                           "comment": "Opened with a real question."}],
        "strengths": ["Asked about the customer's goals first."],
        "practise_next": ["Answer the outage objection with specifics."],
        "model": "openai/gpt-4o-mini", "error": "", "completed_at": "2026-11-25T09:52:10Z",
        "delivery": None,
    },
    "Summary": {
        "sessions_started": 14, "sessions_ended": 11, "average_score": 72.5,
        "learners_active": 4,
        "by_scenario": [{"scenario_id": 5, "title": "Renewal call with a sceptical CTO",
                         "sessions": 9, "sessions_ended": 7, "average_score": 74.0,
                         "best_score": 91}],
        "by_learner": [{"learner_id": 12, "email": "alex@northwind.example", "name": "Alex Kim",
                        "sessions": 5, "average_score": 80.2, "last_session_at": WHEN}],
        "assignments": [{"assignment_id": 17, "scenario_title": "Renewal call with a sceptical CTO",
                         "team": "Support Desk", "learner": None,
                         "due_at": "2026-12-01T17:00:00Z", "overdue": False,
                         "learners_assigned": 3, "learners_completed": 1}],
    },
})  # fmt: skip
