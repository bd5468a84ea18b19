"""OpenAPI examples for the knowledge API (checked against the schema by a test)."""

from __future__ import annotations

from accounts.schema import register_examples, register_operation_errors

DOCUMENT = {
    "id": 7, "title": "Logging HOWTO", "original_filename": "logging-howto.html",
    "format": "html", "content_type": "text/html", "size_bytes": 84211,
    "sha256": "9f2c1e0b4d5a6f7e8d9c0b1a2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e",
    "collection": "Tooling", "status": "ready", "status_label": "Ready", "progress": 100,
    "error": "", "page_count": 1, "chunk_count": 58, "created_at": "2026-11-25T09:30:00Z",
    "updated_at": "2026-11-25T09:31:12Z", "ingested_at": "2026-11-25T09:31:12Z",
}  # fmt: skip

register_examples({
    "Document": DOCUMENT,
    "UploadedDocument": {**DOCUMENT, "duplicate": False, "status": "queued",
                         "status_label": "Queued", "progress": 0, "page_count": None,
                         "chunk_count": 0, "ingested_at": None},
    "DocumentUploadRequestRequest": {"file": "logging-howto.html", "title": "Logging HOWTO",
                                     "collection": "Tooling"},
    "SearchRequestRequest": {"query": "How do I send log messages to a file?", "limit": 5},
    "SearchResult": {
        "query": "How do I send log messages to a file?",
        "passages": [{
            "chunk_id": 311, "document_id": 7, "document_title": "Logging HOWTO", "page": None,
            "heading_path": "Logging HOWTO › Logging to a file",
            "text": "A very common situation is that of recording logging events in a file...",
            "snippet_html": "A very common situation is that of recording <mark>logging</mark>"
                            " events in a <mark>file</mark>...",
            "score": 0.7412, "vector_rank": 1, "text_rank": 2,
        }],
    },
})  # fmt: skip

register_operation_errors({
    ("knowledge_documents_create", "409"): (
        "`knowledge_limit_reached`: the file does not fit in the organization's knowledge "
        "base (its limit on stored bytes or on documents); the message names the limit and "
        "the current use. Nothing is stored, and the organization's admins are told.",
        "knowledge_limit_reached",
        "This file (3.1 MB) does not fit in your organization's knowledge base: 498.6 MB of "
        "its 500.0 MB storage limit are in use. Delete documents you no longer need, or ask "
        "the platform operator to raise the limit.",
    ),
})  # fmt: skip
