"""The API's JSON parser: DRF's, refusing a body nested too deeply to decode as a 400."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # Python's decoder recurses once per "[" or "{": thousands of them exhaust the stack.
            raise ParseError(
                "JSON parse error - the body is nested too deeply to read.", code="parse_error"
            ) from None
