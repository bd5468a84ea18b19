"""REST API of training: scenarios, sessions, messages (streamed as server-sent events when
asked for `text/event-stream`, else returned whole) and debriefs. The same services as the
pages; the access policy on every lookup."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import django_filters
from django.conf import settings
from django.http import HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import renderers, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts import access
from accounts.api import manager_input
from accounts.throttling import PerCallerScopedRateThrottle
from core import sse
from core.filtering import (
    MAX_ID,
    FilteredCursorList,
    FilteredList,
    IdFilter,
    UtcDateTimeFilter,
    read_query,
)
from core.idempotency import Stored, idempotent
from core.pagination import (
    NewestFirstCursorPagination,
    OldestFirstCursorPagination,
    PagePagination,
)
from training import analytics, assignments, scenarios, selectors, sessions, streaming
from training.delivery import delivery_of
from training.models import (
    Assignment,
    Evaluation,
    Message,
    MessageRole,
    MessageStatus,
    Scenario,
    ScenarioMode,
    SessionStatus,
    TrainingSession,
)


class RubricItemSerializer(serializers.Serializer):
    name = serializers.CharField()
    good_looks_like = serializers.CharField()
    weight = serializers.IntegerField()


class ScenarioSerializer(serializers.ModelSerializer):
    rubric = RubricItemSerializer(source="rubric_items", many=True, read_only=True)
    objectives = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Scenario
        fields = ["id", "title", "summary", "mode", "difficulty", "version", "published",
                  "persona_name", "persona_role", "objectives", "time_limit_minutes",
                  "voice", "avatar", "avatar_id", "rubric"]  # fmt: skip
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", "role", "text", "status", "error", "citations", "model",
                  "prompt_tokens", "completion_tokens", "time_to_first_token_ms",
                  "total_time_ms", "interrupted", "voice", "created_at"]  # fmt: skip
        read_only_fields = fields


class SessionSerializer(serializers.ModelSerializer):
    scenario = ScenarioSerializer(read_only=True)

    class Meta:
        model = TrainingSession
        fields = ["id", "scenario", "mode", "channel", "status", "is_preview", "started_at",
                  "expires_at", "ended_at", "ended_reason"]  # fmt: skip
        read_only_fields = fields


class SessionDetailSerializer(SessionSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "messages"]
        read_only_fields = fields


class FillerSerializer(serializers.Serializer):
    filler = serializers.CharField(help_text="um, uh, er, erm, ah, hmm, like, you know, …")
    count = serializers.IntegerField()


class DeliverySerializer(serializers.Serializer):
    """How the learner spoke (training.delivery): voice sessions only, never graded."""

    voice_turns = serializers.IntegerField()
    words = serializers.IntegerField()
    speech_seconds = serializers.FloatField()
    words_per_minute = serializers.IntegerField(allow_null=True)
    filler_count = serializers.IntegerField()
    fillers_per_minute = serializers.FloatField(allow_null=True)
    fillers = FillerSerializer(many=True)
    persona_played_seconds = serializers.FloatField()
    talk_share_percent = serializers.FloatField(
        allow_null=True, help_text="The learner's share of the talking (speech vs replies heard)."
    )
    longest_monologue_seconds = serializers.FloatField(allow_null=True)
    learner_interruptions = serializers.IntegerField(help_text="Replies the learner talked over.")
    persona_interruptions = serializers.IntegerField(
        help_text="0 by design: replies answer finished turns and stop when the learner speaks."
    )
    persona_response_p50_ms = serializers.IntegerField(allow_null=True)
    persona_response_p95_ms = serializers.IntegerField(allow_null=True)
    learner_response_median_ms = serializers.IntegerField(allow_null=True)
    tips = serializers.ListField(child=serializers.CharField())


class EvaluationSerializer(serializers.ModelSerializer):
    delivery = serializers.SerializerMethodField(
        help_text="How the learner spoke (pace, fillers, talk time, pauses); null for a text "
        "session or one without voice turns."
    )

    class Meta:
        model = Evaluation
        fields = ["status", "overall", "rubric_scores", "strengths", "practise_next", "model",
                  "error", "completed_at", "delivery"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(DeliverySerializer(allow_null=True))
    def get_delivery(self, evaluation: Evaluation) -> dict[str, Any] | None:
        found = delivery_of(evaluation.session)
        return None if found is None else DeliverySerializer(found.as_dict()).data


class RubricItemInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    good_looks_like = serializers.CharField()
    weight = serializers.IntegerField(min_value=1, max_value=10, default=1)


@extend_schema_serializer(component_name="ScenarioWriteRequest")
class ScenarioWriteSerializer(serializers.ModelSerializer):
    rubric = RubricItemInputSerializer(many=True, required=False)

    class Meta:
        model = Scenario
        fields = [*scenarios.SCENARIO_FIELDS, "rubric"]


class ScenarioFilter(django_filters.FilterSet):
    mode = django_filters.ChoiceFilter(choices=ScenarioMode.choices)
    published = django_filters.BooleanFilter()
    title = django_filters.CharFilter(lookup_expr="icontains")
    collection = django_filters.CharFilter(
        field_name="knowledge_collections", lookup_expr="contains", method="by_collection"
    )

    class Meta:
        model = Scenario
        fields = ["mode", "published", "title", "collection"]

    def by_collection(self, queryset, name, value):  # noqa: ANN001, ANN201
        return queryset.filter(knowledge_collections__contains=[value])


class ScenarioListView(FilteredList, ListAPIView):
    serializer_class = ScenarioSerializer
    pagination_class = PagePagination
    filterset_class = ScenarioFilter
    ordering_fields = ["title", "created_at", "updated_at", "difficulty"]

    def get_queryset(self):  # noqa: ANN201 - a queryset
        return selectors.scenarios_for(self.request.user).prefetch_related("rubric_items")

    @extend_schema(summary="Scenarios you can start (managers also see drafts)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ScenarioWriteSerializer, responses={201: ScenarioSerializer},
                   summary="Author a scenario (managers)")  # fmt: skip
    def post(self, request: Request) -> Response:
        values = manager_input(
            request, ScenarioWriteSerializer, "Only managers can author scenarios."
        )
        rubric = values.pop("rubric", [])
        scenario = scenarios.create_scenario(actor=request.user, data=values, rubric=rubric)
        return Response(ScenarioSerializer(scenario).data, status=status.HTTP_201_CREATED)


class ScenarioDetailView(APIView):
    @extend_schema(responses=ScenarioSerializer, summary="A scenario")
    def get(self, request: Request, pk: int) -> Response:
        scenario = access.access_or_404(request.user, selectors.scenarios_for(request.user), pk=pk)
        return Response(ScenarioSerializer(scenario).data)

    @extend_schema(
        request=ScenarioWriteSerializer,
        responses=ScenarioSerializer,
        summary="Edit a scenario (a published or used one becomes a new version)",
    )
    def patch(self, request: Request, pk: int) -> Response:
        if not access.is_manager(request.user):
            raise PermissionDenied("Only managers can edit scenarios.")
        access.access_or_404(request.user, Scenario.objects.current(), pk=pk)
        values = manager_input(
            request, ScenarioWriteSerializer, "Only managers can edit scenarios.", partial=True
        )
        rubric = values.pop("rubric", None)
        scenario = scenarios.update_scenario(
            actor=request.user, scenario_id=pk, data=values, rubric=rubric
        )
        return Response(ScenarioSerializer(scenario).data)

    @extend_schema(responses={204: None},
                   summary="Delete a scenario nobody has used (managers; else 409)")  # fmt: skip
    def delete(self, request: Request, pk: int) -> Response:
        if not access.is_manager(request.user):
            raise PermissionDenied("Only managers can delete scenarios.")
        scenarios.delete_scenario(actor=request.user, scenario_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AssignmentSerializer(serializers.ModelSerializer):
    scenario_title = serializers.CharField(source="scenario.title", read_only=True)

    class Meta:
        model = Assignment
        fields = ["id", "scenario", "scenario_title", "team", "learner", "due_at",
                  "attempts_required", "passing_score", "created_at"]  # fmt: skip
        read_only_fields = fields


class AssignmentFilter(django_filters.FilterSet):
    scenario = IdFilter(field_name="scenario_id")
    team = IdFilter(field_name="team_id")
    learner = IdFilter(field_name="learner_id")
    due_before = UtcDateTimeFilter(field_name="due_at", lookup_expr="lt")

    class Meta:
        model = Assignment
        fields = ["scenario", "team", "learner", "due_before"]


class AssignmentListCreateView(FilteredList, ListAPIView):
    """Managers: the organization's assignments; learners: theirs and their teams'."""

    serializer_class = AssignmentSerializer
    pagination_class = PagePagination
    filterset_class = AssignmentFilter
    ordering_fields = ["due_at", "created_at"]

    @extend_schema_serializer(component_name="AssignmentCreateRequest")
    class InputSerializer(serializers.Serializer):
        scenario_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        team_id = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=MAX_ID
        )
        learner_id = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=MAX_ID
        )
        due_at = serializers.DateTimeField(required=False, allow_null=True)
        attempts_required = serializers.IntegerField(min_value=1, max_value=50, default=1)
        passing_score = serializers.IntegerField(min_value=0, max_value=100, default=70)

    def get_queryset(self):  # noqa: ANN201 - a queryset
        return selectors.assignments_for(self.request.user)

    @extend_schema(summary="Assignments", operation_id="assignments_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=InputSerializer, responses={201: AssignmentSerializer},
                   summary="Assign a scenario to a team or a learner (managers)")  # fmt: skip
    def post(self, request: Request) -> Response:
        values = manager_input(request, self.InputSerializer, "Only managers can assign training.")
        assignment = assignments.create_assignment(actor=request.user, **values)
        return Response(AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)


@extend_schema_serializer(component_name="AssignmentUpdateRequest")
class AssignmentUpdateSerializer(serializers.Serializer):
    due_at = serializers.DateTimeField(required=False, allow_null=True)
    attempts_required = serializers.IntegerField(min_value=1, max_value=50, required=False)
    passing_score = serializers.IntegerField(min_value=0, max_value=100, required=False)


class AssignmentDetailView(APIView):
    @extend_schema(responses=AssignmentSerializer, summary="An assignment")
    def get(self, request: Request, pk: int) -> Response:
        # assignments_for is the caller's scope (learners: theirs and their teams').
        assignment = get_object_or_404(selectors.assignments_for(request.user), pk=pk)
        return Response(AssignmentSerializer(assignment).data)

    @extend_schema(request=AssignmentUpdateSerializer, responses=AssignmentSerializer,
                   summary="Change the due date, attempts or passing score (managers)")  # fmt: skip
    def patch(self, request: Request, pk: int) -> Response:
        values = manager_input(
            request,
            AssignmentUpdateSerializer,
            "Only managers can change assignments.",
            partial=True,
        )
        assignment = assignments.update_assignment(actor=request.user, assignment_id=pk, **values)
        return Response(AssignmentSerializer(assignment).data)

    @extend_schema(responses={204: None}, summary="Withdraw an assignment (managers)")
    def delete(self, request: Request, pk: int) -> Response:
        if not access.is_manager(request.user):
            raise PermissionDenied("Only managers can remove assignments.")
        assignments.delete_assignment(actor=request.user, assignment_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SessionStatus.choices)
    mode = django_filters.ChoiceFilter(choices=ScenarioMode.choices)
    scenario = IdFilter(field_name="scenario_id")
    learner = IdFilter(field_name="learner_id")
    started_since = UtcDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UtcDateTimeFilter(field_name="started_at", lookup_expr="lt")
    everyone = django_filters.BooleanFilter(
        method="by_everyone",
        label="Managers: true lists the organization's sessions (default: your own).",
    )

    class Meta:
        model = TrainingSession
        fields = ["status", "mode", "scenario", "learner", "started_since", "started_before"]

    def by_everyone(self, queryset, name, value):  # noqa: ANN001, ANN201
        return queryset  # applied in the view's queryset (it needs the caller)


class SessionListCreateView(FilteredCursorList, ListAPIView):
    serializer_class = SessionSerializer
    pagination_class = NewestFirstCursorPagination
    filterset_class = SessionFilter

    def get_queryset(self):  # noqa: ANN201 - a queryset
        sessions = selectors.sessions_for(self.request.user)
        everyone = self.request.query_params.get("everyone") == "true"  # else 400 (the filter)
        filtering_learner = bool(self.request.query_params.get("learner"))
        if access.is_manager(self.request.user) and (everyone or filtering_learner):
            return sessions.filter(is_preview=False)
        return sessions.filter(learner_id=self.request.user.pk)

    @extend_schema_serializer(component_name="StartSessionRequest")
    class InputSerializer(serializers.Serializer):
        scenario_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        channel = serializers.ChoiceField(choices=["text", "voice"], default="text")
        preview = serializers.BooleanField(default=False)

    @extend_schema(summary="Your sessions (managers: the organization's with everyone=true)",
                   operation_id="sessions_list")  # fmt: skip
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=InputSerializer, responses={201: SessionDetailSerializer},
                   summary="Start a session")  # fmt: skip
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def start() -> tuple[Response, Any]:
            session = sessions.start_session(actor=request.user, **data.validated_data)
            body = SessionDetailSerializer(session).data
            return Response(body, status=status.HTTP_201_CREATED), body

        return idempotent(request, start)


class SessionDetailView(APIView):
    @extend_schema(responses=SessionDetailSerializer, summary="A session with its transcript")
    def get(self, request: Request, pk: int) -> Response:
        return Response(SessionDetailSerializer(selectors.access_session(request.user, pk)).data)


class SessionEndView(APIView):
    @extend_schema(request=None, responses=SessionSerializer,
                   summary="End a session and queue its debrief")  # fmt: skip
    def post(self, request: Request, pk: int) -> Response:
        session = sessions.end_session(actor=request.user, session_id=pk)
        return Response(SessionSerializer(session).data)


class MessageFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=MessageRole.choices)

    class Meta:
        model = Message
        fields = ["role"]


class MessageListView(FilteredCursorList, ListAPIView):
    """A session's messages, oldest first, by cursor (for long transcripts)."""

    serializer_class = MessageSerializer
    pagination_class = OldestFirstCursorPagination
    filterset_class = MessageFilter

    def get_queryset(self):  # noqa: ANN201 - a queryset
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Message.objects.none()
        session = selectors.access_session(self.request.user, self.kwargs["pk"])
        return session.messages.all()

    @extend_schema(summary="A session's messages", operation_id="session_messages_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class EvaluationView(APIView):
    @extend_schema(responses=EvaluationSerializer, summary="The session's debrief")
    def get(self, request: Request, pk: int) -> Response:
        session = selectors.access_session(request.user, pk)
        evaluation = Evaluation.objects.filter(session=session).first()
        if evaluation is None:
            evaluation = Evaluation(session=session)
        return Response(EvaluationSerializer(evaluation).data)


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets clients ask for text/event-stream; errors still arrive as our JSON error body."""

    media_type = "text/event-stream"
    format = "event-stream"

    def render(self, data: object, accepted_media_type: str | None = None,
               renderer_context: dict | None = None) -> bytes:  # fmt: skip
        return json.dumps(data).encode()


class MessageCreateView(APIView):
    renderer_classes = [renderers.JSONRenderer, EventStreamRenderer]
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, PerCallerScopedRateThrottle]
    throttle_scope = "messages"

    def handle_exception(self, exc: Exception) -> Response:
        # Errors always come back in our JSON error shape, even to a client asking for SSE.
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    @extend_schema_serializer(component_name="PostMessageRequest")
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(trim_whitespace=False, allow_blank=True)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: inline_serializer(
                "PostedMessage",
                {"learner_message": MessageSerializer(), "reply": MessageSerializer()},
            ),
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="Server-sent events: start, token (text), done or failed (the "
                "reply as HTML), sent when the request asks for text/event-stream.",
            ),
        },
        examples=[
            OpenApiExample(
                "The reply streaming",
                value=(
                    'event: accepted\ndata: {"reply_id": 303}\n\n'
                    'id: 1764063000000-0\nevent: start\ndata: {"citations": [], '
                    '"model": "openai/gpt-4o-mini"}\n\n'
                    'id: 1764063000120-0\nevent: token\ndata: {"text": "Uptime."}\n\n'
                    'id: 1764063000690-0\nevent: done\ndata: {"html": "<p>Uptime. We lost '
                    'two days in March.</p>", "ended": false}\n\n'
                ),
                response_only=True,
                status_codes=["200"],
                media_type="text/event-stream",
            )
        ],
        summary="Send a message; the reply streams or comes back whole",
    )
    def post(self, request: Request, pk: int) -> Response | StreamingHttpResponse:
        # The service looks the session up once (404 for a foreign one before anything
        # else) and validates the text; InputSerializer documents the body.
        text = request.data.get("text") if hasattr(request.data, "get") else None
        wants_stream = "text/event-stream" in request.headers.get("Accept", "")

        def replay(stored: Stored) -> HttpResponseBase:
            if wants_stream and isinstance(stored.data, dict) and "stream_reply_id" in stored.data:
                return _event_stream(stored.data["stream_reply_id"])
            return stored.response()

        def post() -> tuple[HttpResponseBase, Any]:
            posted = sessions.post_message(actor=request.user, session_id=pk, text=text)
            if wants_stream:
                return _event_stream(posted.reply.pk), {"stream_reply_id": posted.reply.pk}
            streaming.wait_for_end(posted.reply.pk, settings.API_REPLY_WAIT_SECONDS)
            posted.reply.refresh_from_db()
            body = {
                "learner_message": MessageSerializer(posted.learner_message).data,
                "reply": MessageSerializer(posted.reply).data,
            }
            code = status.HTTP_201_CREATED
            if posted.reply.status == MessageStatus.STREAMING:
                code = status.HTTP_202_ACCEPTED  # still being written; GET the session later
            return Response(body, status=code), body

        return idempotent(request, post, replay=replay)


def _event_stream(reply_id: int) -> StreamingHttpResponse:
    async def events() -> AsyncIterator[str]:
        yield sse.event("accepted", {"reply_id": reply_id})
        async for event_id, kind, data in streaming.follow(reply_id):
            yield sse.KEEP_ALIVE if kind == "ping" else sse.event(kind, data, event_id=event_id)

    return sse.response(events())


# --- analytics ------------------------------------------------------------------------


class ScenarioProgressSerializer(serializers.Serializer):
    scenario_id = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    sessions = serializers.IntegerField()
    sessions_ended = serializers.IntegerField()
    average_score = serializers.FloatField(allow_null=True)
    best_score = serializers.IntegerField(allow_null=True)


class LearnerProgressSerializer(serializers.Serializer):
    learner_id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(allow_blank=True)
    sessions = serializers.IntegerField()
    average_score = serializers.FloatField(allow_null=True)
    last_session_at = serializers.DateTimeField(allow_null=True)


class AssignmentProgressSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    scenario_title = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    learner = serializers.EmailField(allow_null=True)
    due_at = serializers.DateTimeField(allow_null=True)
    overdue = serializers.BooleanField()
    learners_assigned = serializers.IntegerField()
    learners_completed = serializers.IntegerField()


class SummarySerializer(serializers.Serializer):
    sessions_started = serializers.IntegerField()
    sessions_ended = serializers.IntegerField()
    average_score = serializers.FloatField(allow_null=True)
    learners_active = serializers.IntegerField()
    by_scenario = ScenarioProgressSerializer(many=True)
    by_learner = LearnerProgressSerializer(many=True, help_text="Managers only (else empty).")
    assignments = AssignmentProgressSerializer(many=True)


class AnalyticsSummaryView(APIView):
    """Progress at a glance: managers see their organization, learners themselves."""

    @extend_schema_serializer(component_name="AnalyticsSummaryQuery")
    class QuerySerializer(serializers.Serializer):
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        team = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
        scenario = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    @extend_schema(parameters=[QuerySerializer], responses=SummarySerializer,
                   summary="Sessions, scores and assignment completion")  # fmt: skip
    def get(self, request: Request) -> Response:
        values = read_query(self.QuerySerializer, request)
        summary = analytics.summarize(
            request.user,
            analytics.SummaryFilter(
                since=values.get("since"),
                until=values.get("until"),
                team_id=values.get("team"),
                scenario_id=values.get("scenario"),
            ),
        )
        return Response(SummarySerializer(summary.as_dict()).data)
