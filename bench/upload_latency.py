"""Upload response time for a 5 MB PDF through the API (the upload answers before ingestion).

    .venv/bin/python bench/upload_latency.py [--uploads 30]

Runs the whole Django stack in-process (middleware, JWT authentication, multipart parsing,
type sniffing, sha256, storage write, the database row and the Celery message to Redis),
against the benchmark servers under var/bench. Each upload has different content, so
none is answered as a duplicate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import bench_setup  # noqa: F401 - puts the project on the path, sets the environment

os.environ.setdefault("THROTTLE_USER", "100000/min")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=30)
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.models import Organization, Role, User
    from knowledge.tests.samples import make_pdf

    organization, _ = Organization.objects.get_or_create(slug="bench-uploads")
    user, _ = User.objects.get_or_create(
        email="uploads@bench.local", defaults={"organization": organization, "role": Role.MANAGER}
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    base = make_pdf([["Returns are accepted within 30 days."]] * 3)
    padding = os.urandom(5 * 1024 * 1024 - len(base))
    timings = []
    for number in range(args.uploads):
        body = base + b"\n%" + padding[: -(number + 1)] + str(number).encode()
        upload = SimpleUploadedFile(f"policy-{number}.pdf", body, content_type="application/pdf")
        started = time.perf_counter()
        response = client.post("/api/v1/knowledge/documents/", {"file": upload}, format="multipart")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 202, response.status_code
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    print(f"{args.uploads} uploads of a {len(body) / 1024 / 1024:.1f} MB PDF")
    verdict = "meets" if p95 < 100 else "MISSES"
    print(f"response time p50 {statistics.median(timings):.1f} ms  p95 {p95:.1f} ms "
          f"({verdict} p95 < 100 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
