"""The debrief: grade an ended session against its scenario's rubric."""

from __future__ import annotations

from django.utils import timezone

from core.provider_billing import is_out_of_credit
from training.billing import tell_admins_llm_out_of_credit
from training.grading import grade_extractively, grade_with_model
from training.llm import LLMError, get_chat_model
from training.models import (
    Evaluation,
    EvaluationStatus,
    TrainingSession,
)
from training.selectors import transcript_of


def grade_session(session_id: int) -> Evaluation:
    """Grade an ended session against its scenario's rubric (idempotent)."""
    session = TrainingSession.objects.select_related("scenario").get(pk=session_id)
    evaluation, _ = Evaluation.objects.get_or_create(session=session)
    if evaluation.status == EvaluationStatus.READY:
        return evaluation
    rubric = list(session.scenario.rubric_items.all())
    transcript, learner_texts = transcript_of(session)
    model = get_chat_model(session.scenario.llm_model, session.scenario.organization_id)
    if not learner_texts:
        evaluation.status = EvaluationStatus.FAILED
        evaluation.error = "Nothing to grade: the learner did not write anything."
        evaluation.save()
        return evaluation
    try:
        if model.is_stand_in:
            grade = grade_extractively(rubric, learner_texts)
        else:
            grade = grade_with_model(model, transcript, rubric, learner_texts)
    except LLMError as exc:
        if exc.retryable:
            raise
        evaluation.status = EvaluationStatus.FAILED
        evaluation.error = str(exc)[:300]
        evaluation.save()
        if is_out_of_credit(exc):
            tell_admins_llm_out_of_credit(session.organization_id)
        return evaluation
    evaluation.overall = grade.overall
    evaluation.rubric_scores = grade.rubric_scores
    evaluation.strengths = grade.strengths
    evaluation.practise_next = grade.practise_next
    evaluation.model = model.model_id
    evaluation.status = EvaluationStatus.READY
    evaluation.completed_at = timezone.now()
    evaluation.save()
    return evaluation
