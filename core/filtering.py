"""Filtering and ordering for API lists (django-filter and DRF's OrderingFilter).

Values are read strictly, as the schema describes them: a filter given with no value
(`?until=`), twice, or a boolean other than `true`/`false` is a 400 naming it, where
django-filter would quietly drop the filter and answer as if it had not been given.
Free-text filters may be empty. (`?ordering=` by a field a list does not offer is still
ignored, by design: the schema allows any string there.)

Ids of related objects are filtered as plain numbers, never as model choices: a choice
field would answer "not a valid choice" for ids that do not exist but not for another
organization's, telling a caller which foreign ids exist. The list's queryset is already
scoped by the access policy, so a foreign id simply matches nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.serializers import Serializer

NEEDS_A_VALUE = "Give a value, or leave this parameter out."
GIVE_ONCE = "Give this parameter once."
BOOLEAN_VALUES = ("true", "false")


def blank_or_repeated(request: Request, names: Any, free_text: set[str]) -> dict[str, list[str]]:
    """Errors for query parameters among `names` given twice, or empty where a value is
    required (every parameter not in `free_text`)."""
    errors = {}
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            errors[name] = [GIVE_ONCE]
        elif values and values[0] == "" and name not in free_text:
            errors[name] = [NEEDS_A_VALUE]
    return errors


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, refusing what it would silently ignore (see above)."""

    def get_filterset(self, request: Request, queryset: Any, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        fields = filterset.form.fields
        free_text = {name for name, field in fields.items() if isinstance(field, forms.CharField)}
        errors = blank_or_repeated(request, fields, free_text)
        for name, declared in filterset.filters.items():
            value = request.query_params.get(name)
            boolean = isinstance(declared, django_filters.BooleanFilter)
            if boolean and value not in (None, "", *BOOLEAN_VALUES):
                errors.setdefault(name, ['Must be "true" or "false".'])
        if errors:
            raise ValidationError(errors)
        return filterset


def read_query(serializer_class: type[Serializer], request: Request) -> dict[str, Any]:
    """A view's query parameters validated by `serializer_class`, strictly: a parameter
    given empty or twice is a 400 naming it (DRF reads an empty one as left out)."""
    fields = serializer_class().fields
    errors = blank_or_repeated(request, fields, free_text=set())
    if errors:
        raise ValidationError(errors)
    query = serializer_class(
        data={name: request.query_params[name] for name in fields if name in request.query_params}
    )
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


class FilteredList:
    """Mixin for list views: `?field=value` filters (filterset_class) and `?ordering=`
    over `ordering_fields` only (`-name` for descending)."""

    filter_backends = [StrictFilterBackend, OrderingFilter]
    ordering_fields: list[str] = []


class FilteredCursorList:
    """For cursor-paginated lists: filters only (the cursor fixes the order)."""

    filter_backends = [StrictFilterBackend]


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
