"""Demo knowledge base: real public documents uploaded for the demo organization."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from knowledge import services

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_DOCUMENTS = [
    ("python-general-faq.html", "Python general FAQ", "Python basics"),
    ("virtual-environments-and-packages.html", "Virtual environments and packages", "Tooling"),
    ("logging-howto.txt", "Logging HOWTO", "Tooling"),
    ("errors-and-exceptions.pdf", "Errors and exceptions", "Python basics"),
    ("python-on-windows-faq.docx", "Python on Windows FAQ", "Platforms"),
]


def seed(manager: User, stdout: TextIO) -> None:
    """Upload the demo documents as the manager; ingestion is queued (idempotent)."""
    for filename, title, collection in DEMO_DOCUMENTS:
        result = services.upload_document(
            actor=manager,
            uploaded_file=SimpleUploadedFile(filename, (DEMO_DIR / filename).read_bytes()),
            title=title,
            collection=collection,
        )
        if result.created:
            stdout.write(f"  queued {title} for ingestion\n")
