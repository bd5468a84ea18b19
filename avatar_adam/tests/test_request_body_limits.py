"""Request bodies stay bounded in memory, whatever a client sends.

A body over the limit of its address is refused with 413 (the API's error shape under
/api/, naming the limit) before it is read: by its declared length, or for a chunked body
as soon as that much has arrived. Upload addresses take REQUEST_BODY_MAX_BYTES, every
other one DATA_UPLOAD_MAX_MEMORY_SIZE. An accepted body reaches Django a few chunks at a
time and uploads are spooled to temporary files. The memory figures are in BENCHMARKS.md
(bench/upload_memory.py).
"""

import asyncio
import hashlib
import io
import json
import os
import socket
import subprocess

import httpx
import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile

from accounts.tests.factories import PASSWORD
from avatar_adam.body_limits import body_limit
from avatar_adam.daphne_requests import CHUNK_BYTES, QUEUED_CHUNKS, BodyFeeder
from conftest import database_url_for_processes, start_daphne, wait_for_port
from knowledge import services
from knowledge.models import Document
from training.tests.run_turns import no_running_loop

UPLOADS = "/api/v1/knowledge/documents/"
TOKEN = "/api/v1/auth/token/"
MB = 1024 * 1024


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
        b"Content-Type: text/markdown\r\n\r\n" % filename.encode()
    )
    return head + content + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"


def assert_too_large(status: int, content_type: str, body: bytes, limit: int) -> str:
    assert status == 413, body[:300]
    assert content_type.startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "fields", "request_id"}
    assert error["code"] == "request_too_large"
    assert f"{limit:,} bytes" in error["message"]
    return error["message"]


# --- the limits, through Django ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "uploads"),
    [
        (UPLOADS, True),
        ("/knowledge/upload/", True),
        ("/admin/knowledge/document/upload/", True),
        (TOKEN, False),
        ("/api/v1/knowledge/documents/1/", False),
        ("/no/such/page/", False),
    ],
)
def test_only_the_upload_addresses_take_the_upload_limit(path, uploads, settings):
    expected = settings.REQUEST_BODY_MAX_BYTES if uploads else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert body_limit(path) == expected


@pytest.mark.django_db
def test_a_large_multipart_body_to_an_address_without_uploads_is_refused(client, settings):
    body, content_type = multipart("big.md", b"x" * (2 * MB))
    response = client.post(TOKEN, body, content_type=content_type)
    message = assert_too_large(
        response.status_code,
        response["Content-Type"],
        response.content,
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    )
    assert "(1 MB)" in message


@pytest.mark.django_db
def test_the_upload_address_takes_up_to_the_upload_limit_and_names_the_document_limit(
    client, settings
):
    body, content_type = multipart("big.md", b"x" * (2 * MB))
    assert client.post(UPLOADS, body, content_type=content_type).status_code == 401
    settings.REQUEST_BODY_MAX_BYTES = MB
    response = client.post(UPLOADS, body, content_type=content_type)
    message = assert_too_large(response.status_code, response["Content-Type"],
                               response.content, MB)  # fmt: skip
    assert "A document may be up to" in message


@pytest.mark.django_db
def test_an_accepted_upload_is_spooled_to_a_temporary_file(
    api_as, alice, settings, tmp_path, monkeypatch
):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    seen = []
    upload_document = services.upload_document

    def spy(**kwargs):
        uploaded = kwargs["uploaded_file"]
        seen.append((type(uploaded), getattr(uploaded, "temporary_file_path", str)()))
        return upload_document(**kwargs)

    monkeypatch.setattr(services, "upload_document", spy)
    content = b"# Returns\n\n" + b"Returns are accepted within 30 days.\n" * 60_000  # 2.2 MB
    assert len(content) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    body, content_type = multipart("returns.md", content)
    response = api_as(alice).generic("POST", UPLOADS, body, content_type=content_type)
    assert response.status_code == 202, response.content[:300]
    [(kind, path)] = seen
    assert kind is TemporaryUploadedFile
    assert path.startswith(str(tmp_path))
    assert Document.objects.get().sha256 == hashlib.sha256(content).hexdigest()


# --- feeding an accepted body to the application ----------------------------------------


def test_an_accepted_body_reaches_the_application_a_few_chunks_at_a_time():
    body = os.urandom(5 * MB + 123)

    async def application_reads_slowly():
        queue = asyncio.Queue()
        feeder = BodyFeeder(queue, io.BytesIO(body))
        feeder.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        received, most_queued = b"", 0
        while True:
            await asyncio.sleep(0)  # give the feeder every chance to run ahead
            await asyncio.sleep(0)
            most_queued = max(most_queued, queue.qsize())
            message = await queue.get()
            received += message["body"]
            if not message["more_body"]:
                return received, most_queued

    with no_running_loop():  # a browser test's Playwright may own this thread's loop
        received, most_queued = asyncio.run(application_reads_slowly())
    assert received == body
    assert most_queued <= QUEUED_CHUNKS


def test_a_client_leaving_reaches_the_application_even_when_the_queue_is_full():
    async def application_stops_reading():
        queue = asyncio.Queue()
        feeder = BodyFeeder(queue, io.BytesIO(b"x" * (CHUNK_BYTES * 20)))
        feeder.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        for _ in range(10):
            await asyncio.sleep(0)
        assert queue.qsize() == QUEUED_CHUNKS
        feeder.put_nowait({"type": "http.disconnect"})
        messages = [queue.get_nowait() for _ in range(queue.qsize())]
        return [message["type"] for message in messages]

    with no_running_loop():
        types = asyncio.run(application_stops_reading())
    assert types == ["http.request"] * QUEUED_CHUNKS + ["http.disconnect"]


# --- through the real server -------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne_port(django_db_setup):
    env = dict(os.environ, DATABASE_URL=database_url_for_processes(), LOG_LEVEL="WARNING",
               VOICE_PRELOAD="false")  # fmt: skip
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_daphne(port, env)
    wait_for_port(port, 60)
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def read_answer(connection: socket.socket, seconds: float = 10) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of the next answer (which has a Content-Length)."""
    connection.settimeout(seconds)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += connection.recv(65536)
    return int(lines[0].split()[1]), headers["content-type"], body


def request_head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("expect", [None, "100-continue"])
def test_daphne_refuses_a_declared_30_mb_upload_before_the_body_is_sent(
    daphne_port, settings, expect
):
    headers = {"Content-Type": "multipart/form-data; boundary=b",
               "Content-Length": str(30 * MB)}  # fmt: skip
    if expect:
        headers["Expect"] = expect
    with socket.create_connection(("127.0.0.1", daphne_port)) as connection:
        connection.sendall(request_head(UPLOADS, **headers))
        status, content_type, body = read_answer(connection)
    message = assert_too_large(status, content_type, body, settings.REQUEST_BODY_MAX_BYTES)
    assert f"({30 * MB:,} bytes)" in message


def test_daphne_refuses_a_large_body_to_the_token_address_by_its_small_limit(daphne_port, settings):
    headers = {"Content-Type": "application/json", "Content-Length": str(2 * MB)}
    with socket.create_connection(("127.0.0.1", daphne_port)) as connection:
        connection.sendall(request_head(TOKEN, **headers) + b'{"email": "')
        status, content_type, body = read_answer(connection)
    assert_too_large(status, content_type, body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def test_daphne_refuses_a_chunked_body_as_soon_as_it_is_over_the_limit(daphne_port, settings):
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Transfer-Encoding": "chunked"}
    piece = b"x" * (256 * 1024)
    with socket.create_connection(("127.0.0.1", daphne_port)) as connection:
        connection.sendall(request_head(TOKEN, **headers))
        for _ in range(6):  # 1.5 MB, and never the last chunk
            connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        status, content_type, body = read_answer(connection)
    assert_too_large(status, content_type, body, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def test_daphne_drops_the_rest_of_a_refused_body_and_closes(daphne_port):
    headers = {"Content-Type": "application/json", "Content-Length": str(3 * MB)}
    with socket.create_connection(("127.0.0.1", daphne_port)) as connection:
        connection.sendall(request_head(TOKEN, **headers))
        assert read_answer(connection)[0] == 413
        connection.sendall(b"x" * (3 * MB))
        connection.settimeout(10)
        assert connection.recv(1) == b""  # closed once the declared body has gone by


def test_bytes_beyond_the_declared_length_are_not_read_as_body(daphne_port):
    with socket.create_connection(("127.0.0.1", daphne_port)) as connection:
        body = b'{"email": "a@b.c", "password": "nope"}'
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        connection.sendall(request_head(TOKEN, **headers) + body + b"y" * (100 * 1024))
        assert read_answer(connection)[0] == 401
        connection.settimeout(10)
        leftover = b""
        try:
            while chunk := connection.recv(65536):  # the extra bytes are no request: closed
                leftover += chunk
        except ConnectionResetError:
            pass
        assert b"HTTP/1.1 2" not in leftover


@pytest.mark.django_db(transaction=True)
def test_through_daphne_an_accepted_upload_arrives_whole(daphne_port, alice):
    base = f"http://127.0.0.1:{daphne_port}"
    tokens = httpx.post(f"{base}{TOKEN}", json={"email": alice.email, "password": PASSWORD},
                        timeout=30)  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    content = b"# Returns\n\n" + b"Returns are accepted within 30 days.\n" * 90_000  # 3.3 MB
    response = httpx.post(
        f"{base}{UPLOADS}",
        files={"file": ("returns.md", content, "text/markdown")},
        headers={"Authorization": f"Bearer {tokens.json()['access']}"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    document = Document.objects.get(pk=response.json()["id"])
    assert document.size_bytes == len(content)
    assert document.sha256 == hashlib.sha256(content).hexdigest()


def test_bodies_of_requests_one_after_another_on_one_connection_each_arrive_whole(daphne_port):
    body = {"email": "nobody@example.test", "password": "wrong", "pad": "x" * 300_000}
    with httpx.Client(base_url=f"http://127.0.0.1:{daphne_port}", timeout=30) as session:
        answers = [session.post(TOKEN, json=body) for _ in range(3)]
    # Read whole, the JSON parses and the credentials are checked (not a parse error).
    assert [answer.status_code for answer in answers] == [401, 401, 401]
