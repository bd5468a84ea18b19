"""REST door of the voice app: a ticket for an API client's voice socket."""

from __future__ import annotations

from pathlib import Path

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice.tickets import issue_ticket

PROTOCOL = (Path(__file__).parent / "PROTOCOL.md").read_text()


class VoiceTicketView(APIView):
    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "VoiceTicket",
                {
                    "ticket": serializers.CharField(),
                    "expires_in": serializers.IntegerField(help_text="seconds"),
                    "url": serializers.CharField(help_text="the socket's path, ticket included"),
                },
            )
        },
        summary="A single-use ticket to open the session's voice socket",
        description="Good for one connection to this session's voice socket within 60 "
        "seconds. The socket's wire protocol, every message and close code:\n\n" + PROTOCOL,
    )
    def post(self, request: Request, pk: int) -> Response:
        ticket = issue_ticket(actor=request.user, session_id=pk)
        return Response(
            {
                "ticket": ticket.value,
                "expires_in": ticket.expires_in,
                "url": f"/ws/sessions/{pk}/voice/?ticket={ticket.value}",
            },
            status=status.HTTP_201_CREATED,
        )
