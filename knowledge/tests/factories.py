from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge import services


def upload(actor, data, name="doc.md", collection=""):
    """Upload through the service, as every surface does."""
    return services.upload_document(
        actor=actor,
        uploaded_file=SimpleUploadedFile(name, data),
        collection=collection,
    ).document


def ingested(actor, data, name="doc.md", collection="", embedder=None):
    document = upload(actor, data, name, collection)
    services.ingest_document(document.pk, embedder=embedder)
    document.refresh_from_db()
    return document
