"""Pagination of API lists: page numbers by default, cursors for sessions and messages."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination, PageNumberPagination


class PagePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class NewestFirstCursorPagination(CursorPagination):
    """Stable paging through lists that grow while a client reads them."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-started_at"


class OldestFirstCursorPagination(NewestFirstCursorPagination):
    ordering = ("created_at", "id")
