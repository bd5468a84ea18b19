"""Pagination of API lists: page numbers by default, cursors for sessions and messages.

`page` and `page_size` are whole numbers from 1 (the schema says so); anything else is a
400 naming the parameter, where DRF would quietly use its default. A `page_size` above
the maximum is capped, as the description says.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request

WHOLE_NUMBER = re.compile(r"-?[0-9]{1,30}")


def positive_query_integer(request: Request, name: str) -> int | None:
    """The query parameter `name` as a whole number from 1, None when absent; else 400."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ValidationError({name: ["Give this parameter once."]})
    if not WHOLE_NUMBER.fullmatch(values[0]) or int(values[0]) < 1:
        raise ValidationError({name: ["A whole number from 1 is required."]})
    return int(values[0])


def _with_minimum(parameters: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
    for parameter in parameters:
        if parameter["name"] in names:
            parameter["schema"] = {**parameter["schema"], "minimum": 1}
    return parameters


class PagePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    page_size_query_description = "Results per page, from 1 (more than 200 gives 200)."
    last_page_strings = ()  # the schema promises a number; "last" is not one

    def get_page_size(self, request: Request) -> int:
        size = positive_query_integer(request, self.page_size_query_param)
        return self.page_size if size is None else min(size, self.max_page_size)

    def get_page_number(self, request: Request, paginator: Any) -> int:
        return positive_query_integer(request, self.page_query_param) or 1

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        return _with_minimum(parameters, {self.page_query_param, self.page_size_query_param})


class NewestFirstCursorPagination(CursorPagination):
    """Stable paging through lists that grow while a client reads them."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    page_size_query_description = "Results per page, from 1 (more than 200 gives 200)."
    ordering = "-started_at"

    def get_page_size(self, request: Request) -> int:
        size = positive_query_integer(request, self.page_size_query_param)
        return self.page_size if size is None else min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        return _with_minimum(parameters, {self.page_size_query_param})


class OldestFirstCursorPagination(NewestFirstCursorPagination):
    ordering = ("created_at", "id")
