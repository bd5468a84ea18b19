"""OpenAPI descriptions of our authentication schemes (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_keys.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Server API key: "Authorization: Api-Key <key>" (or X-API-Key).',
        }


ERROR_RESPONSES = {
    "400": "The request is not valid; `fields` says what to fix.",
    "401": "Missing, expired or invalid credentials.",
    "403": "Signed in, but not allowed to do this.",
    "404": "Not found (also for another organization's objects).",
    "405": "This method is not allowed here.",
    "406": "The requested response format is not available.",
    "409": "The request conflicts with the current state (e.g. the session has ended).",
    "413": "The request or upload is too large.",
    "415": "Unsupported media type (for uploads: a file type we do not accept).",
    "422": "The Idempotency-Key was used with a different request.",
    "429": "Too many requests; retry after the Retry-After header's seconds.",
}


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the one error shape on every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields", "request_id"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": True},
                    "request_id": {"type": "string", "nullable": True},
                },
            }
        },
    }
    reference = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in ERROR_RESPONSES.items():
                operation["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
