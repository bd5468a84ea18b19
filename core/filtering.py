"""Filtering and ordering for API lists (django-filter and DRF's OrderingFilter).

Ids of related objects are filtered as plain numbers, never as model choices: a choice
field would answer "not a valid choice" for ids that do not exist but not for another
organization's, telling a caller which foreign ids exist. The list's queryset is already
scoped by the access policy, so a foreign id simply matches nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter


class FilteredList:
    """Mixin for list views: `?field=value` filters (filterset_class) and `?ordering=`
    over `ordering_fields` only (`-name` for descending)."""

    filter_backends = [DjangoFilterBackend, OrderingFilter]
    ordering_fields: list[str] = []


class FilteredCursorList:
    """For cursor-paginated lists: filters only (the cursor fixes the order)."""

    filter_backends = [DjangoFilterBackend]


MAX_ID = 2**63 - 1  # PostgreSQL bigint


class IdFilter(django_filters.NumberFilter):
    """An object id: a whole number that fits the database, else 400."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        kwargs.setdefault("decimal_places", 0)
        super().__init__(*args, **kwargs)


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC. PostgreSQL refuses offsets beyond ±15:59 that
    Python accepts, and a time near year 1 may not exist in UTC: both are a 400."""

    def filter(self, qs: Any, value: datetime | None) -> Any:
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except (OverflowError, ValueError):
                raise ValidationError(
                    {self.field_name: "This time is out of range once converted to UTC."}
                ) from None
        return super().filter(qs, value)
