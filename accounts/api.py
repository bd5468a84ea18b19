"""REST API for accounts: JWT sign-in, the caller's profile, API keys, teams and users."""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth.forms import PasswordResetForm
from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import access, audit, second_factor, services
from accounts.models import (
    API_KEY_ROLES,
    ApiKey,
    AuditEvent,
    Organization,
    Role,
    Team,
    User,
)
from accounts.throttling import ScopedRateThrottle
from core.filtering import (
    MAX_ID,
    FilteredCursorList,
    FilteredList,
    IdFilter,
    UtcDateTimeFilter,
)
from core.pagination import NewestFirstCursorPagination, PagePagination


class IsManager(BasePermission):
    message = "Only managers and organization admins can do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return access.is_manager(request.user)


def manager_input(
    request: Request,
    serializer_class: type[serializers.Serializer],
    refusal: str,
    *,
    partial: bool = False,
) -> dict[str, Any]:
    """The validated body of a managers-only write: 403 with `refusal` for anyone else
    (before the body is even read), 400 naming the fields for a bad body."""
    if not access.is_manager(request.user):
        raise PermissionDenied(refusal)
    data = serializer_class(data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


# --- sign-in --------------------------------------------------------------------------


@extend_schema_serializer(component_name="TokenObtainPair")  # the v1 name, kept
class TokenObtainSerializer(TokenObtainPairSerializer):
    """Email + password, and `otp` (an authenticator or recovery code) for users with a
    second factor."""

    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=32,
        help_text="Code from the authenticator app (or a recovery code); required for "
        "users who have two-factor sign-in.",
    )
    access = serializers.CharField(read_only=True, help_text="Access token (5 minutes).")
    refresh = serializers.CharField(read_only=True, help_text="Refresh token (rotating).")

    @classmethod
    def get_token(cls, user: Any) -> RefreshToken:
        token = super().get_token(user)
        token[services.REFRESH_FAMILY_CLAIM] = token[jwt_settings.JTI_CLAIM]  # kept on rotation
        return token

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        data = super().validate(attrs)  # password checked (and counted) first
        user = self.user
        request = self.context.get("request")
        code = (attrs.get("otp") or "").strip()
        if second_factor.has_second_factor(user):
            if not code:
                raise AuthenticationFailed(
                    "This account uses two-factor sign-in: send the code from the "
                    "authenticator app in `otp`.",
                    code="otp_required",
                )
            http_request = getattr(request, "_request", request)
            accepted, _ = second_factor.check_code(http_request, user, code)
            if getattr(http_request, "axes_locked_out", False) and request is not None:
                request.axes_locked_out = True
            if not accepted:
                raise AuthenticationFailed(
                    "That code is not right or was already used. Send the code the "
                    "authenticator app shows now.",
                    code="otp_invalid",
                )
        elif second_factor.is_required(user):
            raise AuthenticationFailed(
                "Your organization requires two-factor sign-in for your role: set it up on "
                "the web app's two-factor page first (servers use API keys).",
                code="otp_enrolment_required",
            )
        return data


class TokenObtainView(TokenObtainPairView):
    """Exchange email + password (+ `otp` for two-factor users) for a short access token and
    a rotating refresh token.

    Wrong passwords and wrong codes count toward the same lockout as the sign-in page
    (django-axes).
    """

    serializer_class = TokenObtainSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        request=TokenObtainSerializer,
        responses={200: TokenObtainSerializer},
        summary="Sign in: get an access and a refresh token",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        finally:
            # Axes marks the DRF request it was given; the HTTP request must carry it
            # too so AxesMiddleware answers with the lockout response.
            if getattr(request, "axes_locked_out", False):
                request._request.axes_locked_out = True


class TokenRefreshRotateView(TokenRefreshView):
    """Exchange a refresh token for a new pair; the used refresh token stops working, and
    presenting it again ends every token rotated from the same sign-in."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except InvalidToken:
            refresh = request.data.get("refresh")
            if isinstance(refresh, str):
                services.revoke_reused_refresh_family(refresh)
            raise


class LogoutView(APIView):
    """Revoke a refresh token. Possessing the token is the credential."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema_serializer(component_name="LogoutRequest")
    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={204: None}, summary="Revoke a refresh token")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            RefreshToken(data.validated_data["refresh"]).blacklist()
        except TokenError as exc:
            raise ValidationError({"refresh": [str(exc)]}) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name"]


class MeView(APIView):
    """The signed-in user (or API key) and their organization and role."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(allow_null=True)
        email = serializers.EmailField(allow_null=True)
        full_name = serializers.CharField(allow_blank=True)
        role = serializers.CharField()
        organization = serializers.DictField(allow_null=True)
        teams = TeamSummarySerializer(many=True)
        api_key = serializers.CharField(allow_null=True)

    @extend_schema(responses=OutputSerializer, summary="Who is calling")
    def get(self, request: Request) -> Response:
        actor = request.user
        if isinstance(actor, User):
            org = actor.organization
            body = {
                "id": actor.pk,
                "email": actor.email,
                "full_name": actor.full_name,
                "role": "operator" if actor.is_superuser else actor.role,
                "organization": {"id": org.pk, "name": org.name} if org else None,
                "teams": access.scope(actor, Team.objects.filter(members=actor)),
                "api_key": None,
            }
        else:
            api_key = actor.api_key
            body = {
                "id": None,
                "email": None,
                "full_name": api_key.name,
                "role": api_key.role,
                "organization": {"id": api_key.organization_id, "name": api_key.organization.name},
                "teams": [],
                "api_key": api_key.prefix,
            }
        return Response(self.OutputSerializer(body).data)


# --- API keys -------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "role", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The full key; it is never shown again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyListCreateView(ListAPIView):
    permission_classes = [IsManager]
    serializer_class = ApiKeySerializer
    pagination_class = PagePagination

    def get_queryset(self):  # noqa: ANN201 - a queryset
        return access.scope(self.request.user, ApiKey.objects.all())

    @extend_schema_serializer(component_name="ApiKeyCreateRequest")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        role = serializers.ChoiceField(choices=API_KEY_ROLES, default="manager")

    @extend_schema(operation_id="api_keys_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=InputSerializer, responses={201: ApiKeyCreatedSerializer},
                   summary="Create an API key (the key is shown once)")  # fmt: skip
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.create_api_key(actor=request.user, **data.validated_data)
        body = ApiKeySerializer(created.api_key).data
        body["key"] = created.full_key
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=ApiKeySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ApiKeySerializer(access.access_or_404(request.user, ApiKey, pk=pk)).data)

    @extend_schema(responses={204: None}, summary="Revoke an API key")
    def delete(self, request: Request, pk: int) -> Response:
        services.revoke_api_key(actor=request.user, api_key_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- teams and users (read) -----------------------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    teams = TeamSummarySerializer(many=True, read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "is_active", "teams", "date_joined"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "members", "created_at"]
        read_only_fields = fields

    def get_members(self, team: Team) -> list[int]:
        return [member.pk for member in team.members.all()]


class TeamFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    member = IdFilter(field_name="members")

    class Meta:
        model = Team
        fields = ["name", "member"]


@extend_schema_serializer(component_name="TeamWriteRequest")
class TeamWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    members = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        max_length=5000,
        help_text="Ids of the team's people (replaces the list when given).",
    )


class TeamListView(FilteredList, ListAPIView):
    serializer_class = TeamSerializer
    pagination_class = PagePagination
    filterset_class = TeamFilter
    ordering_fields = ["name", "created_at"]

    def get_queryset(self):  # noqa: ANN201 - a queryset
        return access.scope(self.request.user, Team.objects.prefetch_related("members"))

    @extend_schema(operation_id="teams_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=TeamWriteSerializer, responses={201: TeamSerializer},
                   summary="Create a team (managers)")  # fmt: skip
    def post(self, request: Request) -> Response:
        values = manager_input(request, TeamWriteSerializer, "Only managers can create teams.")
        team = services.create_team(actor=request.user, name=values["name"],
                     member_ids=values.get("members", []))  # fmt: skip
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    @extend_schema(responses=TeamSerializer)
    def get(self, request: Request, pk: int) -> Response:
        team = access.access_or_404(request.user, Team.objects.prefetch_related("members"), pk=pk)
        return Response(TeamSerializer(team).data)

    @extend_schema(request=TeamWriteSerializer, responses=TeamSerializer,
                   summary="Rename a team or set its members (managers)")  # fmt: skip
    def patch(self, request: Request, pk: int) -> Response:
        values = manager_input(
            request, TeamWriteSerializer, "Only managers can change teams.", partial=True
        )
        team = services.update_team(actor=request.user, team_id=pk,
                     name=values.get("name"), member_ids=values.get("members"))  # fmt: skip
        return Response(TeamSerializer(team).data)

    @extend_schema(responses={204: None}, summary="Delete a team (managers)")
    def delete(self, request: Request, pk: int) -> Response:
        if not access.is_manager(request.user):
            raise PermissionDenied("Only managers can delete teams.")
        services.delete_team(actor=request.user, team_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    is_active = django_filters.BooleanFilter()
    team = IdFilter(field_name="teams")
    email = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = User
        fields = ["role", "is_active", "team", "email"]


@extend_schema_serializer(component_name="UserCreateRequest")
class UserCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.LEARNER)
    teams = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        max_length=500,
    )


@extend_schema_serializer(component_name="UserUpdateRequest")
class UserUpdateSerializer(serializers.Serializer):
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    teams = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        max_length=500,
    )


class WelcomeForm(PasswordResetForm):
    """The password-reset email, for a new person who has no password yet."""

    def get_users(self, email: str) -> Any:
        return User.objects.filter(email__iexact=email, is_active=True)


def send_welcome(request: Request, user: User) -> None:
    """The new person chooses their password through the password-reset link."""
    form = WelcomeForm(data={"email": user.email})
    if form.is_valid():
        form.save(
            request=request._request,
            use_https=request.is_secure(),
            subject_template_name="registration/welcome_subject.txt",
            email_template_name="registration/welcome_email.txt",
        )


class UserListView(FilteredList, ListAPIView):
    permission_classes = [IsManager]
    serializer_class = UserSerializer
    pagination_class = PagePagination
    filterset_class = UserFilter
    ordering_fields = ["email", "full_name", "date_joined", "role"]

    def get_queryset(self):  # noqa: ANN201 - a queryset
        return access.scope(self.request.user, User.objects.prefetch_related("teams"))

    @extend_schema(operation_id="users_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer},
                   summary="Add a person (they get an email to choose a password)")  # fmt: skip
    def post(self, request: Request) -> Response:
        data = UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = services.create_user(actor=request.user, email=values["email"],
                     full_name=values.get("full_name", ""), role=values["role"],
                     team_ids=values.get("teams", []))  # fmt: skip
        transaction.on_commit(lambda: send_welcome(request, user))
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class UserDetailView(APIView):
    @extend_schema(responses=UserSerializer)
    def get(self, request: Request, pk: int) -> Response:
        user = access.access_or_404(request.user, User.objects.prefetch_related("teams"), pk=pk)
        return Response(UserSerializer(user).data)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer,
                   summary="Change a person's name, role, teams or active flag")  # fmt: skip
    def patch(self, request: Request, pk: int) -> Response:
        values = manager_input(
            request, UserUpdateSerializer, "Only managers can change people.", partial=True
        )
        if "teams" in values:
            values["team_ids"] = values.pop("teams")
        user = services.update_user(actor=request.user, user_id=pk, **values)
        return Response(UserSerializer(User.objects.get(pk=user.pk)).data)


# --- the caller's organization ---------------------------------------------------------


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "require_second_factor", "managers_see_audit_log",
                  "created_at"]  # fmt: skip
        read_only_fields = ["id", "slug", "created_at"]


@extend_schema_serializer(component_name="OrganizationCreateRequest")
class OrganizationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=80)


class OrganizationListView(ListAPIView):
    """Organizations you can see: platform operators all of them (and create them), everyone
    else their own."""

    serializer_class = OrganizationSerializer
    pagination_class = PagePagination

    def get_queryset(self):  # noqa: ANN201 - a queryset
        return access.scope(self.request.user, Organization.objects.order_by("name"))

    @extend_schema(operation_id="organizations_list", summary="Organizations")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=OrganizationCreateSerializer, responses={201: OrganizationSerializer},
                   summary="Create an organization (platform operators)")  # fmt: skip
    def post(self, request: Request) -> Response:
        if not access.is_operator(request.user):
            raise PermissionDenied("Only platform operators can create organizations.")
        data = OrganizationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organization = services.create_organization(actor=request.user,
                             **data.validated_data)  # fmt: skip
        return Response(OrganizationSerializer(organization).data, status=status.HTTP_201_CREATED)


class OrganizationView(APIView):
    """The caller's organization: everyone reads it, organization admins change it."""

    @extend_schema(responses=OrganizationSerializer, summary="Your organization")
    def get(self, request: Request) -> Response:
        organization = access.access_or_404(
            request.user, Organization, pk=request.user.organization_id or 0
        )
        return Response(OrganizationSerializer(organization).data)

    @extend_schema(request=OrganizationSerializer, responses=OrganizationSerializer,
                   summary="Change the name and settings (organization admins)")  # fmt: skip
    def patch(self, request: Request) -> Response:
        data = OrganizationSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        organization = services.update_organization(actor=request.user,
                             **data.validated_data)  # fmt: skip
        return Response(OrganizationSerializer(organization).data)


# --- the audit log (read-only) ----------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor_label", "actor_user", "actor_api_key", "action",
                  "target_type", "target_id", "changes", "ip", "user_agent",
                  "request_id"]  # fmt: skip
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=audit.action_choices)  # as registered
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains")
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "since", "until", "target_type", "target_id"]


class AuditCursorPagination(NewestFirstCursorPagination):
    ordering = "-created_at"


class AuditEventListView(FilteredCursorList, ListAPIView):
    """The organization's audit log, newest first: organization admins, and managers when
    the organization allows it. The organization always comes from the caller."""

    serializer_class = AuditEventSerializer
    pagination_class = AuditCursorPagination
    filterset_class = AuditEventFilter

    def get_queryset(self):  # noqa: ANN201 - a queryset
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return AuditEvent.objects.none()
        if not access.can_read_audit_log(self.request.user):
            raise PermissionDenied(
                "Only organization admins (and managers, where the organization allows it) "
                "can read the audit log."
            )
        return access.scope(self.request.user, AuditEvent.objects.all())

    @extend_schema(summary="Audit events", operation_id="audit_events_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
