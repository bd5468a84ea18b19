"""Rebuild the demo knowledge base from Debian's python3-doc (run by hand, output committed).

    apt-get install -y python3-doc && .venv/bin/python knowledge/demo/build.py

The documents are real public documentation (Python Software Foundation, PSF licence),
kept in several formats so the demo shows each extractor at work: two HTML pages as
published, a reStructuredText source as plain text, a page rendered into a PDF with
bookmarks, and one into a Word document with headings.
"""

from __future__ import annotations

import html
import io
import re
import shutil
import sys
from pathlib import Path

ROOT = Path("/usr/share/doc/python3.11/html")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def sections_of(page: str) -> list[tuple[str, list[str]]]:
    """(heading, paragraphs) of a Sphinx HTML page, in order."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((ROOT / page).read_text(encoding="utf-8"), "html.parser")
    body = soup.select_one("div.body") or soup
    result: list[tuple[str, list[str]]] = []
    for element in body.find_all(["h1", "h2", "h3", "p", "pre", "li"]):
        text = element.get_text(" ", strip=True).replace("¶", "").strip()
        if not text or element.find_parent(["p", "li"]):
            continue
        if element.name in ("h1", "h2", "h3"):
            result.append((text, []))
        elif result:
            result[-1][1].append(html.unescape(text))
    return [(heading, paragraphs) for heading, paragraphs in result if paragraphs]


def write_pdf(page: str, target: Path) -> None:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
                NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
            }
        )
    )
    for heading, paragraphs in sections_of(page):
        lines = [heading, ""]
        for paragraph in paragraphs:
            words, line = paragraph.split(), ""
            for word in words:
                if len(line) + len(word) > 95:
                    lines.append(line)
                    line = word
                else:
                    line = f"{line} {word}".strip()
            lines += [line, ""]
        for start in range(0, len(lines), 52):
            page_object = writer.add_blank_page(612, 792)
            page_object[NameObject("/Resources")] = DictionaryObject(
                {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
            )
            ops = ["BT", "/F1 10 Tf", "13 TL", "50 750 Td"]
            for text in lines[start : start + 52]:
                safe = text.encode("cp1252", "replace").decode("cp1252")
                safe = safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                ops.append(f"({safe}) Tj T*")
            ops.append("ET")
            stream = DecodedStreamObject()
            stream.set_data("\n".join(ops).encode("cp1252", "replace"))
            page_object[NameObject("/Contents")] = writer._add_object(stream)
            if start == 0:
                writer.add_outline_item(title=heading, page_number=len(writer.pages) - 1)
    writer.add_metadata({"/Title": "Errors and Exceptions (Python tutorial)"})
    buffer = io.BytesIO()
    writer.write(buffer)
    target.write_bytes(buffer.getvalue())


def write_docx(page: str, target: Path) -> None:
    import docx

    document = docx.Document()
    for heading, paragraphs in sections_of(page):
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(re.sub(r"\s+", " ", paragraph))
    document.save(str(target))


def main() -> None:
    shutil.copy(ROOT / "faq/general.html", HERE / "python-general-faq.html")
    shutil.copy(ROOT / "tutorial/venv.html", HERE / "virtual-environments-and-packages.html")
    shutil.copy(ROOT / "_sources/howto/logging.rst.txt", HERE / "logging-howto.txt")
    write_pdf("tutorial/errors.html", HERE / "errors-and-exceptions.pdf")
    write_docx("faq/windows.html", HERE / "python-on-windows-faq.docx")
    print("demo documents written to", HERE)


if __name__ == "__main__":
    main()
