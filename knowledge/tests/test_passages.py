"""Passages worth embedding: page furniture dropped, heading trails that follow the
document's structure, code kept as code from extraction to passage, reST markup cleaned."""

from pathlib import Path

from knowledge.chunking import chunk_blocks, fenced
from knowledge.extraction import extract_isolated

LIMITS = {"max_pages": 50, "max_uncompressed": 1 << 26, "timeout_seconds": 30, "memory_mb": 1024}

# A page as DocBook writes Debian's HTML manuals: navigation tables above and below, a
# table of contents, a page that starts at h2, an admonition titled by an h3, and code.
DOCBOOK_PAGE = """<html><head><title>Chapter 3. Networking</title></head><body>
<div class="navheader"><table><tr><th colspan="3">Chapter 3. Networking</th></tr>
<tr><td><a href="ch02.html">Prev</a></td><td><a href="index.html">Up</a></td>
<td><a href="ch04.html">Next</a></td></tr></table><hr></div>
<div class="chapter">
<h2 class="title">3. Networking</h2>
<div class="toc"><dl><dt>3.1. <a href="#a">Interfaces</a></dt>
<dt>3.2. <a href="#b">Routes</a></dt></dl></div>
<h3>3.1. Interfaces</h3>
<p>Interfaces are configured in the interfaces file.</p>
<div class="note"><h3 class="title">Note</h3><p>Restart networking after editing.</p></div>
<pre class="screen">auto eth0
iface eth0 inet dhcp
    # indented comment</pre>
<h3>3.2. Routes</h3>
<p>Static routes are added with the ip command.</p>
</div>
<div class="navfooter"><hr><table><tr><td><a href="ch02.html">Prev</a></td>
<td><a href="index.html">Home</a></td><td><a href="ch04.html">Next</a></td></tr></table></div>
</body></html>"""


def extract(tmp_path, data, kind):
    path = Path(tmp_path) / "doc"
    path.write_bytes(data.encode())
    return extract_isolated(path, kind, **LIMITS).blocks


def test_navigation_tables_and_tables_of_contents_are_not_passages(tmp_path):
    blocks = extract(tmp_path, DOCBOOK_PAGE, "html")
    text = " ".join(block.text for block in blocks)
    assert "Prev" not in text
    assert "Next" not in text
    assert "Home" not in text
    assert "3.2. Routes" not in text  # the table of contents
    assert "Interfaces are configured" in text


def test_sibling_sections_stay_siblings_and_admonitions_are_no_section(tmp_path):
    blocks = extract(tmp_path, DOCBOOK_PAGE, "html")
    trails = {block.text.split()[0]: block.heading_path for block in blocks}
    assert trails["Interfaces"] == ["3. Networking", "3.1. Interfaces"]
    assert trails["Static"] == ["3. Networking", "3.2. Routes"]  # not under 3.1
    note = next(block for block in blocks if "Restart networking" in block.text)
    assert note.text == "Note: Restart networking after editing."
    assert note.heading_path == ["3. Networking", "3.1. Interfaces"]


def test_code_keeps_its_lines_and_indentation_into_the_passage(tmp_path):
    blocks = extract(tmp_path, DOCBOOK_PAGE, "html")
    code = next(block for block in blocks if block.code)
    assert code.text == "auto eth0\niface eth0 inet dhcp\n    # indented comment"
    drafts = chunk_blocks(
        blocks, target_tokens=200, overlap_tokens=40, count_tokens=lambda t: len(t.split())
    )
    passage = next(d for d in drafts if "iface" in d.text)
    assert fenced(code.text) in passage.text
    assert passage.heading_path == "3. Networking › 3.1. Interfaces"


def test_markdown_code_and_heading_levels(tmp_path):
    source = (
        "## Setup\n\nInstall it.\n\n### Linux\n\nUse apt.\n\n"
        "```python\ndef f(x):\n    return x  # keep\n```\n\n### macOS\n\nUse brew.\n"
    )
    blocks = extract(tmp_path, source, "markdown")
    assert [b.heading_path for b in blocks if b.text.startswith("Use")] == [
        ["Setup", "Linux"],
        ["Setup", "macOS"],
    ]
    code = next(block for block in blocks if block.code)
    assert code.text == "def f(x):\n    return x  # keep"


def test_a_code_block_is_not_split_when_it_fits_a_passage_of_its_own():
    from knowledge.extraction import Block

    prose = Block("word " * 150, ["A"])
    code = Block("\n".join(f"line_{i} = {i}" for i in range(30)), ["A"], code=True)
    drafts = chunk_blocks(
        [prose, code], target_tokens=200, overlap_tokens=40, count_tokens=lambda t: len(t.split())
    )
    holding = [d for d in drafts if "line_0" in d.text or "line_29" in d.text]
    assert len(holding) == 1  # closed the prose passage early rather than split the code
    assert holding[0].text.startswith("```\nline_0 = 0")


def test_a_code_block_longer_than_a_passage_splits_between_lines():
    from knowledge.extraction import Block

    code = Block("\n".join(f"value_{i} = compute({i})" for i in range(100)), ["A"], code=True)
    drafts = chunk_blocks(
        [code], target_tokens=60, overlap_tokens=20, count_tokens=lambda t: len(t.split())
    )
    assert len(drafts) > 1
    lines = []
    for draft in drafts:
        assert draft.text.startswith("```\n")
        assert draft.text.endswith("\n```")
        lines += draft.text.split("\n")[1:-1]
    assert lines == [f"value_{i} = compute({i})" for i in range(100)]  # whole lines, no overlap


def test_rest_roles_and_directives_do_not_leak_into_passages(tmp_path):
    source = (
        "Use :func:`len` or :py:meth:`~list.append` to grow it.\n\n"
        ".. note::\n\n"
        "   :class: tip\n\n"
        "See the footnote [1]_.\n\n"
        ".. [1] Lists are mutable.\n\n"
        ".. _label-name:\n"
    )
    text = " ".join(block.text for block in extract(tmp_path, source, "text"))
    assert "Use len or list.append to grow it." in text
    assert ":func:" not in text
    assert ".. " not in text
    assert ":class:" not in text
    assert "[1] Lists are mutable." in text
