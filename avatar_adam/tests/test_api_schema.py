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
