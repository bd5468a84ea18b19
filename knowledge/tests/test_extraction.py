"""Type from content, text and headings from each format, and hostile files refused with reasons."""

import io
import random
from pathlib import Path

import pytest

from knowledge.extraction import (
    ExtractionError,
    UnsupportedDocument,
    extract_isolated,
    sniff_format,
)
from knowledge.tests import samples

LIMITS = {
    "max_pages": 50,
    "max_uncompressed": 50 * 1024 * 1024,
    "timeout_seconds": 30,
    "memory_mb": 1024,
}


def extract_bytes(tmp_path, data, kind, **limits):
    path = Path(tmp_path) / "doc"
    path.write_bytes(data)
    return extract_isolated(path, kind, **{**LIMITS, **limits})


@pytest.mark.parametrize(
    ("data", "filename", "kind"),
    [
        (samples.make_pdf([["Hello"]]), "notes", "pdf"),
        (samples.make_docx([("Intro", ["Hello"])]), "file.DOCX", "docx"),
        (samples.RETURNS_POLICY_HTML.encode(), "policy.txt", "html"),
        (samples.WARRANTY_MARKDOWN.encode(), "warranty.md", "markdown"),
        (b"Just some plain words.\n\nAnother paragraph.", "readme", "text"),
        (b"Just some plain words.", "notes.html", "text"),
    ],
)
def test_the_type_is_decided_by_content_not_the_name(data, filename, kind):
    assert sniff_format(io.BytesIO(data), filename) == kind


@pytest.mark.parametrize(
    ("data", "filename", "says"),
    [
        (samples.RETURNS_POLICY_HTML.encode(), "x.pdf", "named .pdf but its content is HTML"),
        (samples.make_pdf([["Hello"]]), "x.docx", "named .docx but its content is a PDF"),
        (samples.make_pdf([["Hello"]]), "notes.txt", "named .txt but its content is a PDF"),
        (samples.make_docx([("Intro", ["Hello"])]), "x.pdf",
         "named .pdf but its content is a Word document"),
        (b"Just some plain words.", "x.docx", "named .docx but its content is plain text"),
    ],
)  # fmt: skip
def test_a_name_that_disagrees_with_the_content_is_refused_saying_both(data, filename, says):
    with pytest.raises(UnsupportedDocument) as refused:
        sniff_format(io.BytesIO(data), filename)
    assert refused.value.status == 415
    assert says in refused.value.message


def _with_zip_appended(data):
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.js", b"alert(1)")
    return data + buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00" + samples.make_pdf([["Hi"]]), "Windows program"),
        (b"\x7fELF\x02\x01\x01\x00" + samples.make_pdf([["Hi"]]), "a program"),
        (samples.RETURNS_POLICY_HTML.encode() + samples.make_pdf([["Hi"]]), "two formats"),
        (_with_zip_appended(samples.make_pdf([["Hi"]])), "two formats"),
        (_with_zip_appended(b"Plain words.\n"), "two formats"),
    ],
    ids=["exe-with-pdf", "elf-with-pdf", "html-then-pdf", "pdf-with-zip", "text-with-zip"],
)
def test_polyglots_are_refused(data, says):
    with pytest.raises(UnsupportedDocument) as refused:
        sniff_format(io.BytesIO(data), "x.pdf")
    assert says in refused.value.message


def test_text_that_merely_starts_with_mz_is_still_text():
    assert sniff_format(io.BytesIO(b"MZ Holdings: annual report.\n"), "report.txt") == "text"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (samples.PNG_BYTES, "PNG image"),
        (b"", "empty"),
        (b"PK\x03\x04 not really a zip", "damaged ZIP"),
        (b"\x00\x01\x02\x03" * 100, "binary"),
    ],
)
def test_unsupported_content_is_refused_with_the_accepted_list(data, says):
    with pytest.raises(UnsupportedDocument) as refused:
        sniff_format(io.BytesIO(data), "upload.docx")
    assert says in str(refused.value)
    assert "Accepted types: PDF (.pdf), Word (.docx)" in str(refused.value)


def test_a_zip_that_is_not_a_word_file_is_refused():
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", b"x")
    with pytest.raises(UnsupportedDocument, match="not a Word document"):
        sniff_format(io.BytesIO(buffer.getvalue()), "photos.docx")


def test_pdf_text_keeps_page_numbers_and_outline_headings(tmp_path):
    data = samples.make_pdf(
        [["Returns are accepted within 30 days."], ["Shipping takes 3 to 5 days."]],
        outline=[("Returns", 0), ("Shipping", 1)],
    )
    extraction = extract_bytes(tmp_path, data, "pdf")
    assert extraction.page_count == 2
    by_page = {block.page: block for block in extraction.blocks}
    assert "30 days" in by_page[1].text
    assert by_page[1].heading_path == ["Returns"]
    assert by_page[2].heading_path == ["Shipping"]


def test_docx_keeps_heading_paths(tmp_path):
    data = samples.make_docx(
        [("Returns", ["Thirty days for unopened items."]), ("Shipping", ["Five days."])]
    )
    blocks = extract_bytes(tmp_path, data, "docx").blocks
    assert [(b.heading_path, b.text) for b in blocks] == [
        (["Returns"], "Thirty days for unopened items."),
        (["Shipping"], "Five days."),
    ]


def test_html_scripts_and_navigation_never_become_text(tmp_path):
    blocks = extract_bytes(tmp_path, samples.RETURNS_POLICY_HTML.encode(), "html").blocks
    text = " ".join(block.text for block in blocks)
    assert "30 days" in text
    assert "steal cookies" not in text
    assert "Injected text" not in text
    assert "Home | Products" not in text
    international = next(b for b in blocks if "courier" in b.text)
    assert international.heading_path == ["Customer policies", "Shipping", "International"]


def test_markdown_headings_become_paths(tmp_path):
    blocks = extract_bytes(tmp_path, samples.WARRANTY_MARKDOWN.encode(), "markdown").blocks
    claim = next(b for b in blocks if "serial number" in b.text)
    assert claim.heading_path == ["Warranty guide", "How to claim"]


def test_nul_bytes_are_stripped(tmp_path):
    blocks = extract_bytes(tmp_path, b"Hello\x00 world", "text").blocks
    assert blocks[0].text == "Hello world"


@pytest.mark.parametrize(
    ("make", "kind", "reason"),
    [
        (lambda: samples.make_pdf([["Secret"]], password="hunter2"), "pdf", "password-protected"),
        (lambda: samples.make_pdf([["Fine"]])[:200], "pdf", "seems damaged"),
        (lambda: samples.make_pdf([[], []]), "pdf", "scanned images"),
        (lambda: samples.make_zip_bomb(300), "docx", "ZIP bomb"),
        (lambda: b"PK\x03\x04garbage", "docx", "not a valid Word"),
        (lambda: samples.make_docx([]), "docx", "No text found"),
        (lambda: samples.SCRIPT_ONLY_HTML.encode(), "html", "No text found"),
        (lambda: b"   \n\n  ", "text", "No text found"),
    ],
    ids=[
        "encrypted-pdf",
        "corrupt-pdf",
        "image-only-pdf",
        "zip-bomb",
        "not-a-zip",
        "empty-docx",
        "script-only-html",
        "blank-text",
    ],
)
def test_unreadable_documents_fail_with_a_readable_reason(tmp_path, make, kind, reason):
    with pytest.raises(ExtractionError, match=reason):
        extract_bytes(tmp_path, make(), kind)


def test_too_many_pages_is_refused(tmp_path):
    data = samples.make_pdf([["page"]] * 5)
    with pytest.raises(ExtractionError, match="5 pages; the limit is 3"):
        extract_bytes(tmp_path, data, "pdf", max_pages=3)


def test_a_reader_that_runs_out_of_memory_fails_the_document_not_the_worker(tmp_path):
    words = [f"w{random.randrange(10**9)}" for _ in range(30000)]
    data = samples.make_docx([("Big", [" ".join(words)] * 10)])
    assert extract_bytes(tmp_path, data, "docx").blocks  # readable with the normal limit
    with pytest.raises(ExtractionError, match="memory"):
        extract_bytes(tmp_path, data, "docx", memory_mb=40)


# --- text encodings -------------------------------------------------------------------

FRENCH = "Café au lait, crème brûlée et un résumé naïf.\n\nÀ bientôt, déjà vu."


def test_a_utf8_file_with_one_bad_byte_stays_utf8(tmp_path):
    data = FRENCH.encode() + b" \xff " + "Noël.".encode()
    assert sniff_format(io.BytesIO(data), "menu.txt") == "text"
    text = " ".join(block.text for block in extract_bytes(tmp_path, data, "text").blocks)
    assert text.startswith("Café au lait, crème brûlée")
    assert "déjà vu. \ufffd Noël." in text
    assert "Ã" not in text


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_file_with_a_byte_order_mark_is_read_in_its_encoding(tmp_path, codec):
    data = FRENCH.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    assert sniff_format(io.BytesIO(data), "menu.txt") == "text"
    blocks = extract_bytes(tmp_path, data, "text").blocks
    assert [block.text for block in blocks] == FRENCH.split("\n\n")


def test_utf16_markdown_and_html_are_recognised_as_such():
    markdown = samples.WARRANTY_MARKDOWN.encode("utf-16")
    html = samples.RETURNS_POLICY_HTML.encode("utf-16")
    assert sniff_format(io.BytesIO(markdown), "warranty") == "markdown"
    assert sniff_format(io.BytesIO(html), "policy") == "html"


RETURNS_FR = (
    "Vous pouvez retourner un article dans les trente jours suivant la réception. Le "
    "remboursement est effectué sur le moyen de paiement utilisé lors de l'achat, déduction "
    "faite des frais de port. Les articles soldés ne sont ni repris ni échangés.\n\n"
    "Garantie : deux ans pour l'électroménager, à compter de la date d'achat. Conservez "
    "votre reçu ; il vous sera demandé. Où envoyer le colis ? À notre entrepôt de Lyon."
)
RETURNS_RU = (
    "Вы можете вернуть товар в течение тридцати дней после получения. Деньги вернутся "
    "тем же способом, которым вы оплатили покупку. Товары со скидкой обмену не подлежат."
)


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        (RETURNS_FR, "cp1252"),
        (RETURNS_RU, "koi8-r"),
        ("これは日本語のテキストです。返品は三十日以内です。", "shift_jis"),
    ],
)
def test_a_legacy_encoding_is_detected(tmp_path, text, codec):
    data = text.encode(codec)
    assert sniff_format(io.BytesIO(data), "notes.txt") == "text"
    blocks = extract_bytes(tmp_path, data, "text").blocks
    assert [block.text for block in blocks] == text.split("\n\n")


def test_bytes_no_encoding_explains_are_replaced_and_the_rest_stays_utf8():
    from knowledge.extraction import decode_text

    data = "Noël ".encode() + bytes(range(0x80, 0xA0)) + b" end"
    assert decode_text(data) == "Noël " + "\ufffd" * 32 + " end"
