"""Decide a document's type from its content and extract its text as headed blocks.

Extractors (all pure Python, well kept): pypdf for PDF (page by page, outline for
headings), python-docx for DOCX (lxml with entity resolution off), BeautifulSoup with
the standard-library parser for HTML, markdown-it-py for Markdown. Extraction runs in a
child process with a memory and time limit (`extract_isolated`), so a hostile file can
hang or crash only that child, never the worker.
"""

from __future__ import annotations

import codecs
import json
import re
import resource
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from core.errors import Refused

ACCEPTED_TYPES = {
    "pdf": "PDF (.pdf)",
    "docx": "Word (.docx)",
    "html": "HTML (.html)",
    "markdown": "Markdown (.md)",
    "text": "plain text (.txt)",
}
ACCEPTED_LIST = ", ".join(ACCEPTED_TYPES.values())
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
}
SNIFF_BYTES = 8192
MAX_ZIP_ENTRIES = 2000
MAX_COMPRESSION_RATIO = 100
BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0": "an old-style Office file (.doc/.xls); save it as .docx",
    b"Rar!": "a RAR archive",
    b"\x1f\x8b": "a gzip archive",
}
PROGRAM_SIGNATURES = {
    b"\x7fELF": "a program",
    b"\xcf\xfa\xed\xfe": "a program",
    b"\xce\xfa\xed\xfe": "a program",
}
# What a file's name says it is; html, markdown and text are one family (markdown may hold
# HTML, a .txt may be either), so within it the content decides.
NAMED_TYPES = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html",
               ".md": "markdown", ".markdown": "markdown",
               ".txt": "text", ".text": "text"}  # fmt: skip
TEXT_TYPES = {"html", "markdown", "text"}
CONTENT_NAMES = {"pdf": "a PDF", "docx": "a Word document", "html": "HTML",
                 "markdown": "Markdown", "text": "plain text"}  # fmt: skip
HTML_HINT = re.compile(r"<(!doctype html|html|head|body|h[1-6]|p|div|article)[\s>]", re.I)
MARKDOWN_HEADING = re.compile(r"(?m)^#{1,6} \S")
# Control characters other than tab, newlines and form feed, and U+FFFD for bytes that
# decode in no encoding: more than one, and more than 1 in 100, and the file is not text.
NOT_TEXT = re.compile(r"[\x00-\x08\x0e-\x1f\ufffd]")
BYTE_ORDER_MARKS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]
UNMARKED_EXCLUDED = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]


class UnsupportedDocument(Refused):
    """The upload is not a type we accept; the message says what it is and what we take."""

    status = 415
    code = "unsupported_document_type"


class ExtractionError(Exception):
    """The document could not be read; the message is a reason a manager can act on."""


@dataclass
class Block:
    text: str
    heading_path: list[str] = field(default_factory=list)
    page: int | None = None
    code: bool = False  # preformatted: kept whole, line breaks and indentation intact


@dataclass
class Extraction:
    blocks: list[Block]
    page_count: int | None = None


# --- type from content ----------------------------------------------------------------


def sniff_format(stream: IO[bytes], filename: str) -> str:
    """Return one of ACCEPTED_TYPES for the upload's content, or raise UnsupportedDocument:
    for content we do not take, a program or a file that is two formats at once, and a
    name whose type disagrees with the content (HTML named .pdf)."""
    kind = _content_format(stream, filename)
    suffix = Path(filename).suffix.lower()
    named = NAMED_TYPES.get(suffix)
    if named is not None and named != kind and not {named, kind} <= TEXT_TYPES:
        raise UnsupportedDocument(
            f"The file is named {suffix} but its content is {CONTENT_NAMES[kind]}. Upload the "
            "original file, or rename it to match what it is."
        )
    return kind


def _content_format(stream: IO[bytes], filename: str) -> str:
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    if not head.strip():
        raise UnsupportedDocument(f"The file is empty. Accepted types: {ACCEPTED_LIST}.")
    program = _program(head)
    if program:
        raise UnsupportedDocument(
            f"This is {program}, whatever else it contains. Accepted types: {ACCEPTED_LIST}."
        )
    ends_with_zip = zipfile.is_zipfile(stream)
    stream.seek(0)
    # PDF readers accept a header anywhere in the first 1 KiB: room for a second format.
    pdf_at = head.find(b"%PDF-", 0, 1024)
    if pdf_at > 0 and head[:pdf_at].strip():
        raise _two_formats("a PDF with other content before it")
    if pdf_at >= 0:
        if ends_with_zip:
            raise _two_formats("a PDF with a ZIP archive appended")
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(stream) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            raise UnsupportedDocument(
                f"This looks like a damaged ZIP archive. Accepted types: {ACCEPTED_LIST}."
            ) from None
        finally:
            stream.seek(0)
        if "word/document.xml" in names:
            return "docx"
        raise UnsupportedDocument(
            f"This is a ZIP archive, not a Word document. Accepted types: {ACCEPTED_LIST}."
        )
    for signature, what in BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise UnsupportedDocument(f"This is {what}. Accepted types: {ACCEPTED_LIST}.")
    if ends_with_zip:
        raise _two_formats("a ZIP archive appended to other content")
    if len(head) == SNIFF_BYTES:  # a character cut at the sniff edge is not a bad byte
        head = head[:-3] + head[-3:].rstrip(bytes(range(0x80, 0x100)))
    text = decode_text(head)
    if len(NOT_TEXT.findall(text)) > 1 + len(text) // 100:
        raise UnsupportedDocument(
            f"This is a binary file we cannot read. Accepted types: {ACCEPTED_LIST}."
        )
    if HTML_HINT.search(text[:2048]):
        return "html"
    lower = filename.lower()
    if lower.endswith((".md", ".markdown")) or MARKDOWN_HEADING.search(text):
        return "markdown"
    return "text"


def _program(head: bytes) -> str | None:
    """What kind of executable the file starts as, if any."""
    # Every DOS/Windows executable header holds zero bytes; text that starts "MZ" does not.
    if head.startswith(b"MZ") and b"\x00" in head[:64]:
        return "a Windows program"
    for signature, what in PROGRAM_SIGNATURES.items():
        if head.startswith(signature):
            return what
    return None


def _two_formats(what: str) -> UnsupportedDocument:
    return UnsupportedDocument(
        f"This file is two formats at once ({what}), a way to hide content from checks. "
        "Upload the document on its own."
    )


def decode_text(data: bytes) -> str:
    """The text of an uploaded text file: by its byte-order mark; else as UTF-8 (a UTF-8
    file with a few bad bytes stays UTF-8, each bad byte becoming U+FFFD); else in the
    encoding charset-normalizer detects; else UTF-8 with undecodable bytes replaced."""
    for bom, codec in BYTE_ORDER_MARKS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    as_utf8 = data.decode("utf-8", errors="replace")
    replaced = as_utf8.count("\ufffd")
    multibyte = len(as_utf8) - len(as_utf8.encode("ascii", errors="ignore")) - replaced
    # Valid multi-byte sequences do not happen by chance in a legacy encoding: this is UTF-8.
    if multibyte >= replaced:
        return as_utf8
    encoding = _detected_encoding(data)
    if encoding is None:
        return as_utf8
    return data.decode(encoding, errors="replace")


def _detected_encoding(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    # Without a byte-order mark, UTF-16/32 is a guess that turns short Latin text to CJK.
    matches = from_bytes(data, cp_exclusion=UNMARKED_EXCLUDED)
    best = matches.best()
    if best is None:
        return None
    # Windows code pages often tie on Western text; cp1252 is by far the likeliest of them.
    for match in matches:
        if match.encoding == "cp1252" and (match.chaos, -match.coherence) <= (
            best.chaos,
            -best.coherence,
        ):
            return "cp1252"
    return best.encoding


def clean_text(text: str) -> str:
    """Drop NUL and other control characters PostgreSQL or readers choke on; tidy spaces."""
    text = text.replace("\x00", "")
    text = re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", " ", text)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def clean_code(text: str) -> str:
    """Code keeps its indentation and line breaks: only control characters go, tabs stay,
    and blank lines around it are trimmed."""
    text = text.replace("\x00", "")
    text = re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", " ", text)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


# reStructuredText / Sphinx markup that leaks into text: a role (":func:`len`",
# ":py:meth:`~a.b`"), a directive or comment line (".. note::", ".. [1] text", "..
# _label:"), and a field of a directive (":maxdepth: 2").
_REST_ROLE = re.compile(r":(?:[a-z][\w-]*:)+`~?([^`]+)`")
_REST_DIRECTIVE = re.compile(r"^\.\. (?:[\w:-]+::.*|_[^:]+:.*|\|[^|]+\|.*)$", re.MULTILINE)
_REST_FOOTNOTE = re.compile(r"^\.\. (\[[^\]]+\])\s*", re.MULTILINE)
_REST_OPTION = re.compile(r"^\s+:[a-z-]+:(?: .*)?$", re.MULTILINE)


def clean_rest_markup(text: str) -> str:
    """Prose without reST syntax: roles become their text, directive and label lines go,
    a footnote keeps its number."""
    text = _REST_ROLE.sub(lambda m: m.group(1).split(" <")[0], text)
    text = _REST_DIRECTIVE.sub("", text)
    text = _REST_FOOTNOTE.sub(lambda m: f"{m.group(1)} ", text)
    return _REST_OPTION.sub("", text)


# --- extractors -----------------------------------------------------------------------


def extract(path: Path, kind: str, *, max_pages: int, max_uncompressed: int) -> Extraction:
    """Extract headed text blocks. Raises ExtractionError with a readable reason."""
    extractors = {
        "pdf": lambda: _extract_pdf(path, max_pages),
        "docx": lambda: _extract_docx(path, max_uncompressed),
        "html": lambda: _extract_html(decode_text(path.read_bytes())),
        "markdown": lambda: _extract_markdown(decode_text(path.read_bytes())),
        "text": lambda: _extract_text(decode_text(path.read_bytes())),
    }
    extraction = extractors[kind]()
    extraction.blocks = [
        Block(
            clean_code(block.text) if block.code else clean_text(clean_rest_markup(block.text)),
            [clean_text(h) for h in block.heading_path],
            block.page,
            block.code,
        )
        for block in extraction.blocks
    ]
    extraction.blocks = [block for block in extraction.blocks if block.text]
    if not extraction.blocks:
        if kind == "pdf":
            raise ExtractionError(
                "No text found in this PDF. It may be scanned images only; upload a PDF "
                "with selectable text."
            )
        raise ExtractionError("No text found in this document.")
    return extraction


def _extract_pdf(path: Path, max_pages: int) -> Extraction:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise ExtractionError(
                "This PDF is password-protected. Upload a copy without a password."
            )
        page_count = len(reader.pages)
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError(
            f"This PDF could not be read; it seems damaged ({type(exc).__name__})."
        ) from None
    if page_count > max_pages:
        raise ExtractionError(
            f"This PDF has {page_count} pages; the limit is {max_pages}. Split it and "
            "upload the parts."
        )
    headings_by_page = _pdf_outline(reader)
    blocks: list[Block] = []
    current: list[str] = []
    for number, page in enumerate(reader.pages, start=1):
        current = headings_by_page.get(number, current)
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one bad page must not lose the rest of the document
            text = ""
            blocks.append(Block("", current, number))
            del exc
        for paragraph in re.split(r"\n\s*\n", text):
            blocks.append(Block(paragraph.replace("\n", " "), list(current), number))
    return Extraction(blocks, page_count)


def _pdf_outline(reader: Any) -> dict[int, list[str]]:
    """Map page number -> heading path from the PDF's bookmarks (empty when it has none)."""
    result: dict[int, list[str]] = {}

    def walk(items: list[Any], trail: list[str]) -> None:
        last: list[str] = trail
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            try:
                page = reader.get_destination_page_number(item) + 1
            except Exception:  # noqa: S112 - a broken bookmark is skipped, not fatal
                continue
            last = [*trail, str(item.title)]
            result.setdefault(page, last)

    try:
        walk(reader.outline, [])
    except Exception:
        return {}
    return result


def _extract_docx(path: Path, max_uncompressed: int) -> Extraction:
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ZIP_ENTRIES:
                raise ExtractionError("This Word file has too many parts to be a real document.")
            total = sum(entry.file_size for entry in entries)
            if total > max_uncompressed:
                raise ExtractionError(
                    "This Word file expands to more than "
                    f"{max_uncompressed // (1024 * 1024)} MB; it looks like a ZIP bomb."
                )
            for entry in entries:
                ratio = entry.file_size / max(entry.compress_size, 1)
                if entry.file_size > 1024 * 1024 and ratio > MAX_COMPRESSION_RATIO:
                    raise ExtractionError(
                        "This Word file is compressed suspiciously well (a ZIP bomb?); "
                        "it was not opened."
                    )
    except zipfile.BadZipFile:
        raise ExtractionError("This is not a valid Word (.docx) file.") from None
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise ExtractionError(
            f"This Word file could not be read; it seems damaged ({type(exc).__name__})."
        ) from None
    except MemoryError:
        raise
    except Exception as exc:  # lxml raises its own syntax errors for broken XML
        raise ExtractionError(
            f"This Word file could not be read; it seems damaged ({type(exc).__name__})."
        ) from None
    blocks: list[Block] = []
    trail: list[str] = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        level = _docx_heading_level(paragraph.style.name if paragraph.style else "")
        if level:
            trail = [*trail[: level - 1], text]
            continue
        blocks.append(Block(text, list(trail)))
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells if cell.text.strip()]
            if cells:
                blocks.append(Block(" | ".join(dict.fromkeys(cells)), list(trail)))
    return Extraction(blocks)


def _docx_heading_level(style: str) -> int:
    match = re.fullmatch(r"(?:Heading|Title)\s*(\d?)", style.strip(), re.I)
    if not match:
        return 0
    return int(match.group(1) or 1)


HTML_DROP = ["script", "style", "noscript", "template", "iframe", "svg", "object", "embed", "nav"]
HTML_BLOCKS = ["p", "li", "pre", "blockquote", "dd", "dt", "td", "th", "figcaption", "caption"]
HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
# Page furniture, by structure: site headers and footers, navigation bars and sidebars,
# DocBook's "Prev Up Home Next" tables and per-page tables of contents, Sphinx's
# sidebar, "related" bar and permalink anchors, breadcrumbs, skip links.
HTML_FURNITURE = (
    "[role=navigation], [role=banner], [role=contentinfo], [role=search], aside, footer, "
    "header, .navheader, .navfooter, .toc, .list-of-tables, .list-of-examples, "
    ".sphinxsidebar, .related, .headerlink, .breadcrumb, .breadcrumbs, .skip-link, "
    "#sidebar, .sidebar"
)
# Admonitions (DocBook's div.note… with an h3 "Note", Sphinx's .admonition): their title
# is a label of the passage, not a section of the document.
ADMONITIONS = ".note, .tip, .important, .warning, .caution, .admonition"


def _enter_section(open_sections: list[tuple[int, str]], level: int, title: str) -> None:
    """A heading of `level` closes the open sections at its level or deeper."""
    while open_sections and open_sections[-1][0] >= level:
        open_sections.pop()
    open_sections.append((level, title))


def _main_content(soup: Any) -> Any:
    """The page's main content when it says which it is (<main>, role=main, one
    <article>, Sphinx's div.body), else its body."""
    for selector in ("main", "[role=main]", "div.body", "div.document"):
        found = soup.select(selector)
        if len(found) == 1:
            return found[0]
    articles = soup.find_all("article")
    if len(articles) == 1:
        return articles[0]
    return soup.body or soup


def _extract_html(html: str) -> Extraction:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(HTML_DROP):
        tag.decompose()
    for tag in soup.select(HTML_FURNITURE):
        tag.decompose()
    for admonition in soup.select(ADMONITIONS):
        title = admonition.find([*HEADINGS, "p"], class_=["title", "admonition-title"])
        if title is None:
            title = admonition.find(HEADINGS)
        if title is not None:
            label = title.get_text(" ", strip=True).rstrip(":")
            title.decompose()
            first = admonition.find(HTML_BLOCKS)
            if first is not None and label:
                first.insert(0, f"{label}: ")
    root = _main_content(soup)
    blocks: list[Block] = []
    # The open sections as (level, title): a heading closes those at its level or deeper,
    # so on a page that starts at h2, sibling h3 sections stay siblings.
    open_sections: list[tuple[int, str]] = []
    for element in root.find_all([*HEADINGS, *HTML_BLOCKS]):
        if element.find_parent(HTML_BLOCKS):
            continue  # its text is part of the enclosing block
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        if element.name in HEADINGS:
            _enter_section(open_sections, int(element.name[1]), text.rstrip("¶ ").strip())
            continue
        trail = [title for _, title in open_sections]
        if element.name == "pre":
            blocks.append(Block(element.get_text(), trail, code=True))
            continue
        blocks.append(Block(text, trail))
    if not blocks:
        loose = root.get_text(" ", strip=True)
        if loose:
            blocks.append(Block(loose, []))
    return Extraction(blocks)


def _extract_markdown(source: str) -> Extraction:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    blocks: list[Block] = []
    open_sections: list[tuple[int, str]] = []
    heading_level = 0
    for token in tokens:
        trail = [title for _, title in open_sections]
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "inline" and heading_level:
            _enter_section(open_sections, heading_level, token.content)
            heading_level = 0
        elif token.type == "inline":
            blocks.append(Block(token.content, trail))
        elif token.type in ("fence", "code_block"):
            blocks.append(Block(token.content, trail, code=True))
    return Extraction(blocks)


def _extract_text(source: str) -> Extraction:
    return Extraction([Block(paragraph) for paragraph in re.split(r"\n\s*\n", source)])


# --- isolation ------------------------------------------------------------------------


def extract_isolated(
    path: Path,
    kind: str,
    *,
    max_pages: int,
    max_uncompressed: int,
    timeout_seconds: int,
    memory_mb: int,
) -> Extraction:
    """Run `extract` in a child process capped in memory and time.

    Raises ExtractionError for unreadable documents, hangs and crashes alike.
    """

    def limit_child() -> None:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    command = [
        sys.executable,
        "-m",
        "knowledge.extraction",
        str(path),
        kind,
        str(max_pages),
        str(max_uncompressed),
    ]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            timeout=timeout_seconds,
            preexec_fn=limit_child,
            cwd=Path(__file__).resolve().parent.parent,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExtractionError(
            f"Reading this document took longer than {timeout_seconds} s and was stopped."
        ) from None
    if completed.returncode != 0:
        raise ExtractionError(
            "This document could not be read: the reader ran out of memory or crashed "
            f"(exit status {completed.returncode})."
        )
    result = json.loads(completed.stdout)
    if "error" in result:
        raise ExtractionError(result["error"])
    return Extraction(
        [Block(**block) for block in result["blocks"]], page_count=result.get("page_count")
    )


def _child_main(argv: list[str]) -> None:
    path, kind, max_pages, max_uncompressed = argv
    try:
        extraction = extract(
            Path(path), kind, max_pages=int(max_pages), max_uncompressed=int(max_uncompressed)
        )
        payload: dict[str, Any] = {
            "blocks": [asdict(block) for block in extraction.blocks],
            "page_count": extraction.page_count,
        }
    except ExtractionError as exc:
        payload = {"error": str(exc)}
    except RecursionError:
        payload = {"error": "This document is nested too deeply to read."}
    except MemoryError:
        payload = {"error": "This document needs more memory to read than the limit allows."}
    sys.stdout.write(json.dumps(payload))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
