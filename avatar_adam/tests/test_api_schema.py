"""The OpenAPI schema: generated without warnings, served to signed-in callers, with docs."""

import pytest
from django.core.management import call_command


def test_schema_generation_emits_no_warnings_or_errors(capsys, tmp_path):
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    output = capsys.readouterr()
    assert "Warning" not in output.err
    assert "Error" not in output.err
    schema = (tmp_path / "schema.yml").read_text()
    for path in (
        "/api/v1/auth/token/",
        "/api/v1/knowledge/search/",
        "/api/v1/sessions/{id}/messages/",
    ):
        assert path in schema


@pytest.mark.django_db
def test_the_schema_and_docs_are_served_to_signed_in_callers(api_as, client, alice):
    assert client.get("/api/v1/schema/").status_code in (401, 403)
    api = api_as(alice)
    assert api.get("/api/v1/schema/").status_code == 200
    client.force_login(alice)
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn.jsdelivr" not in docs.content  # assets are self-hosted (CSP 'self')


def _json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a null alternative."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def test_every_operation_has_examples_that_match_its_schema(tmp_path):
    import jsonschema
    import yaml

    call_command("spectacular", "--file", str(tmp_path / "schema.yml"))
    document = yaml.safe_load((tmp_path / "schema.yml").read_text())
    components = _json_schema(document["components"])
    missing, invalid, checked = [], [], 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            contents = [("request", operation.get("requestBody", {}).get("content", {}))]
            contents += [(code, response.get("content", {}))
                         for code, response in operation["responses"].items()]  # fmt: skip
            for where, content in contents:
                for media_type, media in content.items():
                    name = f"{method.upper()} {path} {where} {media_type}"
                    if media_type == "text/event-stream":  # a stream of events, not JSON
                        if where == "200":
                            assert "event: done" in str(media.get("examples", "")), name
                        continue
                    if "example" not in media:
                        missing.append(name)
                        continue
                    schema = {**_json_schema(media["schema"]), "components": components}
                    try:
                        jsonschema.validate(media["example"], schema)
                        checked += 1
                    except jsonschema.ValidationError as exc:
                        invalid.append(f"{name}: {exc.message}")
    assert not missing, f"operations without examples: {missing}"
    assert not invalid, f"examples that do not match the schema: {invalid}"
    assert checked > 400  # every error response of every operation, and the bodies
