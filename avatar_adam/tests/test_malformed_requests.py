"""A malformed body anywhere under /api/ is a 4xx in the API's one error shape, never a
500 or an HTML page: too deeply nested JSON, broken JSON, a broken multipart body, too
many form fields, a body over the limit."""

import os
import socket
import subprocess

import httpx
import pytest

from conftest import database_url_for_processes, start_daphne, wait_for_port

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert set(error) == {"code", "message", "fields", "request_id"}
    return error


def test_deeply_nested_json_signed_out_is_a_400_in_the_error_shape(client):
    response = client.post(TOKEN_URL, "[" * 10_000, content_type="application/json")
    error = assert_error_shape(response, 400, "parse_error")
    assert "nested too deeply" in error["message"]


def test_deeply_nested_json_signed_in_is_a_400_in_the_error_shape(api_as, alice):
    response = api_as(alice).post("/api/v1/teams/", "[" * 10_000, content_type="application/json")
    assert_error_shape(response, 400, "parse_error")


def test_broken_json_is_a_400_in_the_error_shape(client):
    response = client.post(TOKEN_URL, '{"email": ', content_type="application/json")
    assert_error_shape(response, 400, "parse_error")


def test_a_multipart_body_without_a_boundary_is_a_400_in_the_error_shape(client):
    response = client.post(TOKEN_URL, b"--b--", content_type="multipart/form-data")
    assert_error_shape(response, 400, "parse_error")


def test_too_many_form_fields_is_a_400_in_the_error_shape(client):
    body = "&".join(f"f{n}=1" for n in range(1_001))
    response = client.post(TOKEN_URL, body, content_type="application/x-www-form-urlencoded")
    error = assert_error_shape(response, 400, "too_many_fields")
    assert "1,000" in error["message"]


def test_too_many_multipart_fields_is_a_400_in_the_error_shape(client):
    parts = "".join(
        f'--b\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\n1\r\n' for n in range(1_001)
    )
    response = client.post(
        TOKEN_URL, f"{parts}--b--\r\n", content_type="multipart/form-data; boundary=b"
    )
    assert_error_shape(response, 400, "too_many_fields")


def test_a_form_body_over_the_memory_limit_without_a_length_is_a_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = "&".join(f"f{n}=1" for n in range(100))
    response = client.generic(
        "POST", TOKEN_URL, body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code in (413,)
    assert_error_shape(response, 413, "request_too_large")


def test_a_malformed_body_on_a_page_still_gets_a_page_answer(client):
    body = "&".join(f"f{n}=1" for n in range(1_001))
    response = client.post("/login/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


@pytest.fixture
def daphne_url(transactional_db):
    env = dict(os.environ, DATABASE_URL=database_url_for_processes(), LOG_LEVEL="WARNING")
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_daphne(port, env)
    wait_for_port(port, 60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_through_daphne_a_malformed_multipart_body_reaches_the_api_and_its_error_shape(
    daphne_url,
):
    for body in (b"--b--", b"--b\r\nContent-Disposition: form-data\r\n\r\n"):
        response = httpx.post(
            f"{daphne_url}{TOKEN_URL}",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b"},
            timeout=30,
        )
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]["message"]
