"""Celery entry points of the training app: load ids, call a service, idempotent."""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task

from training import debriefs, reminders, sessions, turns
from training.llm import LLMError


@shared_task(name="training.generate_reply", acks_late=True, reject_on_worker_lost=True)
def generate_reply_task(reply_id: int) -> None:
    """REPLY_RUNNER=celery only. Never retried: a reply that failed is marked incomplete."""
    turns.generate_reply(reply_id)


@shared_task(
    bind=True,
    name="training.grade_session",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=4,
)
def grade_session_task(self: Task, session_id: int) -> None:
    try:
        debriefs.grade_session(session_id)
    except LLMError as exc:
        if self.request.retries >= self.max_retries:
            from training.models import Evaluation, EvaluationStatus

            Evaluation.objects.filter(session_id=session_id).update(
                status=EvaluationStatus.FAILED, error=str(exc)[:300]
            )
            return
        raise self.retry(exc=exc, countdown=10 * 2**self.request.retries) from exc


@shared_task(name="training.end_expired_sessions", acks_late=True)
def end_expired_sessions() -> int:
    return sessions.end_expired_sessions()


@shared_task(name="training.finish_abandoned_replies", acks_late=True)
def finish_abandoned_replies() -> int:
    return turns.finish_abandoned_replies()


@shared_task(name="training.notify_new_assignment", acks_late=True)
def notify_new_assignment(assignment_id: int) -> int:
    return reminders.notify_new_assignment(assignment_id)


@shared_task(name="training.send_due_reminders", acks_late=True)
def send_due_reminders() -> int:
    return reminders.send_due_reminders()
