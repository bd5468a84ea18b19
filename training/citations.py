"""Citations as the learner reads them: the passages a trainer's reply cites, one number
each in the order the reply first uses them, each linking to a view of the passage.

A reply's stored `citations` list every passage the prompt carried, numbered as in the
prompt (`engine.build_prompt`: citation n is prompt passage n). The model cites some of
them as "[n]" (also "[2, 3]" or "[2][3]"), in any order and any number of times. What the
page shows renumbers them 1, 2, 3… by first use, in the text and in the list alike, and
leaves out passages the reply did not cite; a reply that cites nothing by number (the
offline stand-in quotes passages in order) lists them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# "[3]", "[1, 3]", "[1][3]" (numbers in brackets), not "arr[0]" (after a word character).
_MARKER = re.compile(r"(?<!\w)\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.DOTALL)


@dataclass(frozen=True)
class Cited:
    shown: int  # the number the page shows
    number: int  # the number in the prompt and in the stored citation (the link's)
    title: str
    page: int | None
    heading: str
    chunk_id: int | None


def _outside_code(text: str) -> list[tuple[int, int]]:
    """Spans of `text` that are not code (markers inside code are code)."""
    spans, start = [], 0
    for match in _CODE.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _markers(text: str) -> list[tuple[re.Match[str], list[int]]]:
    found = []
    for start, end in _outside_code(text):
        for match in _MARKER.finditer(text, start, end):
            found.append((match, [int(n) for n in match.group(1).split(",")]))
    return found


def renumbered(text: str, citations: list[dict[str, Any]]) -> tuple[str, list[Cited]]:
    """The reply's text with its citation numbers in order of first use, and the passages
    it cites under those numbers (all of them, in prompt order, when it cites none)."""
    by_number = {c.get("number"): c for c in citations if isinstance(c.get("number"), int)}
    order: list[int] = []
    markers = _markers(text)
    for _, numbers in markers:
        for number in numbers:
            if number in by_number and number not in order:
                order.append(number)
    if not order:
        order = sorted(by_number)
        shown_of = {number: number for number in order}
    else:
        shown_of = {number: index for index, number in enumerate(order, start=1)}
        pieces, last = [], 0
        for match, numbers in markers:
            kept = sorted({shown_of[n] for n in numbers if n in shown_of})
            pieces.append(text[last : match.start()])
            # A number the prompt never had is not a citation: it is dropped, not shown.
            pieces.append(f"[{', '.join(map(str, kept))}]" if kept else "")
            last = match.end()
        pieces.append(text[last:])
        text = "".join(pieces)
    cited = [
        Cited(
            shown=shown_of[number],
            number=number,
            title=str(by_number[number].get("title") or "Untitled document"),
            page=by_number[number].get("page"),
            heading=str(by_number[number].get("heading") or ""),
            chunk_id=by_number[number].get("chunk_id"),
        )
        for number in order
    ]
    return text, cited
