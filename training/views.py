"""Learner pages: dashboard, scenario library, the chat page with streamed replies, history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts import access, notices, usage
from accounts.models import Team
from core import sse
from training import analytics, errors, selectors, sessions, streaming
from training.delivery import delivery_of
from training.llm import STAND_IN_MODEL_ID
from training.models import (
    Channel,
    EvaluationStatus,
    Message,
    Scenario,
)
from training.rendering import prepare_for_page

SESSION_PAGE = "training/session.html"
NEW_FOR = timedelta(days=7)  # an assignment not yet started is marked new this long


def _assignments_for(user: object) -> list[dict[str, object]]:
    rows = []
    for assignment in selectors.assignments_of(user):
        current = Scenario.objects.current().filter(family=assignment.scenario.family).first()
        progress = analytics.learner_progress(assignment, [user.pk]).get(
            user.pk, analytics.LearnerProgress()
        )
        status = progress.status(assignment)
        now = timezone.now()
        due = assignment.due_at
        rows.append(
            {
                "assignment": assignment,
                "scenario": current,
                "done": progress.attempts,
                "best": progress.best,
                "status": status,
                "new": status == "not started" and assignment.created_at > now - NEW_FOR,
                "overdue": bool(due and due <= now and status != "passed"),
                "due_soon": bool(
                    due
                    and now < due <= now + timedelta(hours=settings.ASSIGNMENT_DUE_SOON_HOURS)
                    and status != "passed"
                ),
            }
        )
    return rows


def _trend_points(scores: list[int]) -> str:
    """SVG polyline points for a small score chart (oldest left)."""
    if not scores:
        return ""
    step = 200 / max(1, len(scores) - 1)
    return " ".join(f"{i * step:.0f},{60 - s * 0.56:.0f}" for i, s in enumerate(scores))


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    sessions = selectors.sessions_for(user).filter(learner=user).select_related("evaluation")
    recent = list(sessions[:8])
    scores = [
        s.evaluation.overall
        for s in reversed(list(sessions.filter(evaluation__status=EvaluationStatus.READY)[:12]))
    ]
    return render(
        request,
        "training/dashboard.html",
        {
            "teams": access.scope(user, Team.objects.filter(members=user)),
            "assignments": _assignments_for(user) if user.organization_id else [],
            "recent": recent,
            "scores": scores,
            "trend_points": _trend_points(scores),
            # Managers also see their organization's progress at a glance.
            "progress": analytics.summarize(user) if access.is_manager(user) else None,
            # and its use of its limits; admins see the problems only they can fix.
            "allowances": (
                usage.allowances_of(user.organization)
                if access.is_manager(user) and user.organization_id
                else []
            ),
            "notices": list(notices.open_notices_for(user)),
        },
    )


@login_required
@require_GET
def library(request: HttpRequest) -> HttpResponse:
    scenarios = selectors.scenarios_for(request.user).prefetch_related("rubric_items")
    return render(request, "training/library.html", {"scenarios": scenarios})


@login_required
@require_POST
def start(request: HttpRequest, scenario_id: int) -> HttpResponse:
    channel = request.POST.get("channel") or Channel.TEXT
    if channel not in Channel.values:
        raise errors.TrainingError(
            f"A session is practised by text or by voice; {channel[:40]!r} is neither."
        )
    session = sessions.start_session(
        actor=request.user,
        scenario_id=scenario_id,
        channel=channel,
        preview=request.POST.get("preview") == "1",
    )
    return redirect("training:session", session_id=session.pk)


def _session_context(request: HttpRequest, session_id: int) -> dict[str, object]:
    session = sessions.end_if_expired(selectors.access_session(request.user, session_id))
    messages = list(session.messages.order_by("created_at", "id"))
    for message in messages:
        prepare_for_page(message)
    return {
        "session": session,
        "turns": messages,
        "is_owner": session.learner_id == request.user.pk,
        "stand_in": any(m.model == STAND_IN_MODEL_ID for m in messages) or _uses_stand_in(),
        "evaluation": getattr(session, "evaluation", None),
        "delivery": delivery_of(session, messages),
        # "Practise again" starts the scenario's current version, if learners may.
        "practise_again": None
        if session.is_active or session.is_preview
        else Scenario.objects.current()
        .filter(family=session.scenario.family, published=True)
        .first(),
    }


def _uses_stand_in() -> bool:
    from training.llm import get_chat_model

    return get_chat_model().is_stand_in


@login_required
@require_GET
def session_page(request: HttpRequest, session_id: int) -> HttpResponse:
    return render(request, SESSION_PAGE, _session_context(request, session_id))


@login_required
@require_POST
def post_message(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        posted = sessions.post_message(
            actor=request.user, session_id=session_id, text=request.POST.get("text", "")
        )
    except errors.TrainingError as exc:
        response = render(
            request, f"{SESSION_PAGE}#composer-error", {"error": str(exc)}, status=exc.status
        )
        response["HX-Retarget"] = "#composer-error"
        response["HX-Reswap"] = "outerHTML"
        return response
    posted.reply.html = ""
    return render(
        request,
        f"{SESSION_PAGE}#new-turn",
        {"turns": [posted.learner_message, posted.reply], "session": posted.reply.session},
    )


@login_required
@require_POST
def end(request: HttpRequest, session_id: int) -> HttpResponse:
    sessions.end_session(actor=request.user, session_id=session_id)
    return redirect("training:session", session_id=session_id)


@login_required
@require_GET
def debrief(request: HttpRequest, session_id: int) -> HttpResponse:
    return render(request, f"{SESSION_PAGE}#debrief", _session_context(request, session_id))


@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    sessions = (
        selectors.sessions_for(request.user)
        .filter(learner=request.user)
        .select_related("evaluation")
    )
    return render(request, "training/history.html", {"sessions": sessions})


def _reply_for(user: object, session_id: int, message_id: int) -> Message:
    session = selectors.access_session(user, session_id)
    message = session.messages.filter(pk=message_id).first()
    if message is None or message.is_from_learner:
        raise Http404("Not found.")
    return message


async def reply_stream(request: HttpRequest, session_id: int, message_id: int) -> HttpResponseBase:
    """Server-sent events of one reply: replayed from the start, then live until done."""
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    message = await sync_to_async(_reply_for)(user, session_id, message_id)
    after = request.headers.get("Last-Event-ID", "0-0")

    async def events() -> AsyncIterator[str]:
        async for event_id, kind, data in streaming.follow(message.pk, after):
            yield sse.KEEP_ALIVE if kind == "ping" else sse.event(kind, data, event_id=event_id)

    return sse.response(events())
