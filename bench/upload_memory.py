"""How much the server process grows for large request bodies, through the real Daphne.

    .venv/bin/python bench/upload_memory.py [--concurrent 10] [--upload-mb 20] [--refused-mb 30]

Uses the benchmark servers under var/bench and starts Daphne on them (one process, as
`make run` does). Measures the Daphne process's peak resident memory (VmHWM, reset
before each case through /proc/<pid>/clear_refs, and sampled every 10 ms as a check)
above its resident memory just before the case:

1. one refused upload: a 30 MB multipart body, signed out, to the upload endpoint and to
   the token endpoint, sent in full by a client that does not wait for an answer;
2. `--concurrent` accepted uploads of `--upload-mb` MB at once by a manager (different
   PDFs, so none is answered as a duplicate).

The target is under 50 MB of growth for each. The uploaded documents are deleted at the
end (their ingestion is never run: no worker is started).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_setup import BASE_DIR, free_port

os.environ.setdefault("THROTTLE_USER", "100000/min")
os.environ.setdefault("THROTTLE_ANON", "100000/min")

UPLOAD_PATH = "/api/v1/knowledge/documents/"
TOKEN_PATH = "/api/v1/auth/token/"
TARGET_MB = 50
MB = 1024 * 1024


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


class PeakMemory:
    """The server's peak RSS above its RSS at the start (MB), by the kernel's high-water
    mark and by sampling."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> PeakMemory:
        # Start from a steady server: RSS unchanged (within 256 KB) for half a second.
        previous, deadline = kib(self.pid, "VmRSS"), time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(0.5)
            current = kib(self.pid, "VmRSS")
            if abs(current - previous) < 256:
                break
            previous = current
        self.start_kib = kib(self.pid, "VmRSS")
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        self.sampled_kib = self.start_kib
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.sampled_kib = max(self.sampled_kib, kib(self.pid, "VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sampler.join()
        self.hwm_kib = kib(self.pid, "VmHWM")
        self.end_kib = kib(self.pid, "VmRSS")

    @property
    def growth_mb(self) -> float:
        return (max(self.hwm_kib, self.sampled_kib) - self.start_kib) / 1024

    @property
    def retained_mb(self) -> float:
        return (self.end_kib - self.start_kib) / 1024


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, bytes]:
    boundary = b"----bench-upload-memory"
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (boundary, name.encode(), value.encode())
        for name, value in fields.items()
    ]
    parts.append(
        b'--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" % (boundary, filename.encode())
    )
    head = b"".join(parts)
    tail = b"\r\n--%s--\r\n" % boundary
    return head + content + tail, b"multipart/form-data; boundary=" + boundary


def post(port: int, path: str, body: bytes, content_type: bytes, token: str = "") -> tuple:
    """Send the whole body whatever the server says meanwhile (a careless client), then
    read the answer. Returns (status, json body or None, seconds, bytes the client sent)."""
    started = time.perf_counter()
    head = (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n" % (path.encode(), content_type, len(body))
    )
    if token:
        head += b"Authorization: Bearer %s\r\n" % token.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        connection.sendall(head + b"\r\n")
        sent = 0
        view = memoryview(body)
        try:
            while sent < len(body):
                sent += connection.send(view[sent : sent + 256 * 1024])
        except OSError:
            pass  # the server answered and closed before the whole body went
        response = http.client.HTTPResponse(connection)
        try:
            response.begin()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException):
            status, payload = 0, b""
    seconds = time.perf_counter() - started
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    return status, data, seconds, sent


def pdf_of(size: int, number: int) -> bytes:
    from knowledge.tests.samples import make_pdf

    base = make_pdf([["Returns are accepted within 30 days."]] * 3)
    return base + b"\n%" + os.urandom(size - len(base) - 2 - 8) + b"%08d" % number


def start_daphne(port: int) -> subprocess.Popen:
    env = dict(os.environ, LOG_LEVEL="WARNING", ALLOWED_HOSTS="127.0.0.1,localhost")
    env.setdefault("VOICE_PRELOAD", "false")  # the speech models would load meanwhile
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "avatar_adam.asgi:application"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Daphne did not start") from None
            time.sleep(0.2)


def verdict(growth: float) -> str:
    return f"{'meets' if growth < TARGET_MB else 'MISSES'} < {TARGET_MB} MB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--upload-mb", type=float, default=20)
    parser.add_argument("--refused-mb", type=float, default=30)
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.models import Organization, Role, User
    from knowledge.models import Document
    from knowledge.services import delete_document

    organization, _ = Organization.objects.get_or_create(slug="bench-upload-memory")
    user, _ = User.objects.get_or_create(
        email="upload-memory@bench.local",
        defaults={"organization": organization, "role": Role.MANAGER},
    )
    token = str(RefreshToken.for_user(user).access_token)
    max_upload = settings.DOCUMENT_MAX_BYTES
    upload_bytes = int(args.upload_mb * MB)
    if upload_bytes > max_upload:
        print(f"{args.upload_mb} MB is over DOCUMENT_MAX_BYTES ({max_upload:,}): using the max")
        upload_bytes = max_upload
    stamp = int(time.time())
    uploads = [
        multipart({"title": f"bench {n}"}, f"bench-{stamp}-{n}.pdf", pdf_of(upload_bytes, n))
        for n in range(args.concurrent + 1)
    ]
    refused_body, refused_type = multipart({}, "huge.pdf", os.urandom(int(args.refused_mb * MB)))

    port = free_port()
    daphne = start_daphne(port)
    lines = []
    try:
        # Warm-up: the code paths of both cases run once before measuring.
        small, small_type = multipart({}, f"warm-{stamp}.pdf", pdf_of(200_000, 999))
        assert post(port, UPLOAD_PATH, small, small_type, token)[0] == 202
        post(port, TOKEN_PATH, refused_body[: 2 * MB], refused_type)
        body, content_type = uploads[-1]
        assert post(port, UPLOAD_PATH, body, content_type, token)[0] == 202
        idle_mb = kib(daphne.pid, "VmRSS") / 1024
        lines.append(f"Daphne RSS after warm-up: {idle_mb:.0f} MB")

        for path in (UPLOAD_PATH, TOKEN_PATH):
            with PeakMemory(daphne.pid) as memory:
                status, data, seconds, sent = post(port, path, refused_body, refused_type)
            message = (data or {}).get("error", {}).get("message", "(no JSON error)")
            lines.append(
                f"one refused {args.refused_mb:.0f} MB upload, signed out, to {path}: "
                f"{status} in {seconds:.2f} s, the client sent {sent / MB:.1f} MB of it; "
                f"peak RSS growth {memory.growth_mb:.1f} MB ({verdict(memory.growth_mb)}), "
                f"retained {memory.retained_mb:.1f} MB"
            )
            lines.append(f"  answer: {status} {message}")

        results: list[tuple] = []

        def upload(number: int) -> None:
            body, content_type = uploads[number]
            results.append(post(port, UPLOAD_PATH, body, content_type, token))

        threads = [threading.Thread(target=upload, args=(n,)) for n in range(args.concurrent)]
        with PeakMemory(daphne.pid) as memory:
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
        statuses = sorted(result[0] for result in results)
        lines.append(
            f"{args.concurrent} concurrent accepted uploads of {upload_bytes / MB:.0f} MB: "
            f"statuses {statuses} in {wall:.1f} s; peak RSS growth {memory.growth_mb:.1f} MB "
            f"({verdict(memory.growth_mb)}), retained {memory.retained_mb:.1f} MB"
        )
    finally:
        daphne.terminate()
        daphne.wait(15)
        for document in Document.objects.filter(organization=organization):
            delete_document(actor=user, document_id=document.pk)
    load = os.getloadavg()
    print(f"load average before the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
