"""Sample documents made on the fly for tests: real PDF, DOCX, HTML files, good and hostile."""

import io
import zipfile

import docx
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def _escape(text):
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages, *, outline=None, password=None):
    """A PDF whose pages carry `pages` (a list of lists of lines) as real text."""
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        operators = ["BT", "/F1 11 Tf", "14 TL", "60 740 Td"]
        for line in lines:
            operators.append(f"({_escape(line)}) Tj T*")
        operators.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(operators).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    for title, page_index in outline or []:
        writer.add_outline_item(title=title, page_number=page_index)
    if password:
        writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx(sections):
    """A DOCX from [(heading, [paragraphs]), ...]."""
    document = docx.Document()
    for heading, paragraphs in sections:
        if heading:
            document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip_bomb(uncompressed_mb=300):
    """A 'DOCX' whose document.xml inflates to `uncompressed_mb` MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            block = b"0" * (1024 * 1024)
            for _ in range(uncompressed_mb):
                entry.write(block)
    return buffer.getvalue()


PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01\r\n-\xb4\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)

RETURNS_POLICY_HTML = """<!doctype html>
<html><head><title>Returns</title><script>alert('steal cookies')</script></head>
<body>
<nav>Home | Products | Contact</nav>
<h1>Customer policies</h1>
<h2>Returns</h2>
<p>Customers may return unopened items within 30 days of delivery for a full refund.</p>
<p>Opened items can be exchanged within 14 days if they are faulty.</p>
<script>document.write('<p>Injected text from a script</p>')</script>
<h2>Shipping</h2>
<p>Standard shipping takes 3 to 5 working days. Express delivery arrives the next working day
when ordered before 2 pm.</p>
<h3>International</h3>
<p>International orders ship by courier and take 7 to 10 days.</p>
</body></html>
"""

SCRIPT_ONLY_HTML = (
    "<html><head><script>var a = 1;</script></head><body><script>go()</script></body></html>"
)

WARRANTY_MARKDOWN = """# Warranty guide

## What is covered

Every **Northwind** blood-pressure monitor carries a two-year warranty against defects in
materials and workmanship.

## What is not covered

Damage from drops, water or unauthorised repairs is not covered. Batteries are consumables.

## How to claim

Call support with the serial number printed under the battery cover.
"""
