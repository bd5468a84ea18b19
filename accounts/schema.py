"""OpenAPI: our authentication schemes (drf-spectacular extensions), the one error shape
on every operation, and request/response examples (a post-processing hook)."""

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


ERROR_EXAMPLES = {
    "400": ("invalid", "Some fields are not valid; see fields.",
            {"passing_score": ["Ensure this value is less than or equal to 100."]}),
    "401": ("not_authenticated", "Authentication credentials were not provided.", {}),
    "403": ("permission_denied", "Only managers can change assignments.", {}),
    "404": ("not_found", "Not found.", {}),
    "405": ("method_not_allowed", 'Method "PUT" not allowed.', {}),
    "406": ("not_acceptable", "Could not satisfy the request Accept header.", {}),
    "409": ("session_ended", "This session has ended; start a new one.", {}),
    "413": ("request_too_large", "The request body is too large.", {}),
    "415": ("unsupported_media_type", "Accepted types: PDF, DOCX, HTML, Markdown, plain text.",
            {}),
    "422": ("idempotency_key_reused",
            "This Idempotency-Key was used with a different request.", {}),
    "429": ("throttled", "Request was throttled. Expected available in 12 seconds.", {}),
}  # fmt: skip

# Request and response examples by component name, registered by each app's
# schema_examples module (examples of paginated lists are built from their items).
_EXAMPLES: dict[str, Any] = {}


def register_examples(examples: dict[str, Any]) -> None:
    _EXAMPLES.update(examples)


# Error responses that one operation gives for its own reasons, by (operationId, status):
# (description, code, message), shown instead of the generic description and example.
_OPERATION_ERRORS: dict[tuple[str, str], tuple[str, str, str]] = {}


def register_operation_errors(errors: dict[tuple[str, str], tuple[str, str, str]]) -> None:
    _OPERATION_ERRORS.update(errors)


def example_for(component: str, schemas: dict[str, Any]) -> Any:
    if component in _EXAMPLES:
        return _EXAMPLES[component]
    if component.startswith("Paginated") and component.endswith("List"):
        item = _EXAMPLES.get(component[len("Paginated") : -len("List")])
        if item is None:
            return None
        page = {"next": None, "previous": None, "results": [item]}
        if "count" in schemas.get(component, {}).get("properties", {}):
            page = {"count": 1, **page}
        return page
    return None


def _add_examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    contents = [operation.get("requestBody", {}).get("content", {})]
    contents += [
        response.get("content", {})
        for code, response in operation["responses"].items()
        if code.startswith("2")
    ]
    for content in contents:
        for media in content.values():
            reference = media.get("schema", {}).get("$ref", "")
            if reference and "example" not in media:
                value = example_for(reference.rsplit("/", 1)[-1], schemas)
                if value is not None:
                    media["example"] = value


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
                error_code, message, fields = ERROR_EXAMPLES[code]
                own = _OPERATION_ERRORS.get((operation.get("operationId", ""), code))
                if own is not None:
                    description, error_code, message = own
                    fields = {}
                example = {
                    "error": {
                        "code": error_code,
                        "message": message,
                        "fields": fields,
                        "request_id": "5b0c2f7e-1d2a-4c8e-9f4e-3a6b1c2d9e10",
                    }
                }
                operation["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference,
                                                         "example": example}},
                    },
                )  # fmt: skip
            _add_examples(operation, schemas)
    return result
