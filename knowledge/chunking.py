"""Split extracted blocks into token-sized passages that respect headings and paragraphs.

A passage never spans two sections (heading paths) or two PDF pages, so every citation
points at one place. Paragraphs are kept whole while they fit; a paragraph longer than
the target is split at sentence ends. Consecutive passages of one section overlap by
about `overlap_tokens` of trailing sentences, so an answer that straddles a boundary is
still found whole in one of them.

Code (a block extracted as preformatted) stays code: fenced in Markdown so the answer and
the passage view show it as code, kept whole in one passage when it fits (a passage is
closed early rather than split it), else split between lines, never inside one; it is
never cut into sentences or used as overlap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from knowledge.extraction import Block

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
HEADING_SEPARATOR = " › "


@dataclass
class ChunkDraft:
    text: str
    heading_path: str
    page: int | None
    token_count: int


def _sentences(text: str) -> list[str]:
    parts = [part.strip() for part in SENTENCE_END.split(text) if part.strip()]
    return parts or [text]


def _split_long(text: str, limit: int, count: Callable[[str], int]) -> list[str]:
    """Split text longer than `limit` tokens at sentence ends (or words, as a last resort)."""
    pieces: list[str] = []
    current: list[str] = []
    for sentence in _sentences(text):
        if count(sentence) > limit:
            words = sentence.split()
            step = max(1, int(len(words) * limit / max(count(sentence), 1)))
            for start in range(0, len(words), step):
                pieces.append(" ".join(words[start : start + step]))
            continue
        candidate = " ".join([*current, sentence])
        if current and count(candidate) > limit:
            pieces.append(" ".join(current))
            current = [sentence]
        else:
            current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces


def fenced(code: str) -> str:
    """`code` as a Markdown code block, its fence longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{code}\n{fence}"


def _code_pieces(code: str, limit: int, count: Callable[[str], int]) -> list[str]:
    """A code block as one fenced piece, or split between lines into fenced pieces of at
    most `limit` tokens (a single line longer than that stays whole)."""
    whole = fenced(code)
    if count(whole) <= limit:
        return [whole]
    pieces: list[str] = []
    current: list[str] = []
    for line in code.split("\n"):
        if current and count(fenced("\n".join([*current, line]))) > limit:
            pieces.append(fenced("\n".join(current)))
            current = []
        current.append(line)
    if current:
        pieces.append(fenced("\n".join(current)))
    return pieces


def _tail(text: str, tokens: int, count: Callable[[str], int]) -> str:
    """The last whole sentences of `text` that fit in `tokens` (none of code)."""
    if tokens <= 0 or text.startswith("```"):
        return ""
    kept: list[str] = []
    for sentence in reversed(_sentences(text)):
        if count(" ".join([sentence, *kept])) > tokens:
            break
        kept.insert(0, sentence)
    return " ".join(kept)


def chunk_blocks(
    blocks: Iterable[Block],
    *,
    target_tokens: int,
    overlap_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[ChunkDraft]:
    """Group blocks into passages of about `target_tokens` tokens."""
    drafts: list[ChunkDraft] = []
    section_key: tuple[str, int | None] | None = None
    parts: list[str] = []
    size = 0

    def flush(keep_overlap: bool) -> None:
        nonlocal parts, size
        if not parts:
            return
        text = "\n\n".join(parts)
        assert section_key is not None
        drafts.append(ChunkDraft(text, section_key[0], section_key[1], count_tokens(text)))
        tail = _tail(parts[-1], overlap_tokens, count_tokens) if keep_overlap else ""
        parts = [tail] if tail else []
        size = count_tokens(tail) if tail else 0

    for block in blocks:
        key = (HEADING_SEPARATOR.join(block.heading_path)[:500], block.page)
        if key != section_key:
            flush(keep_overlap=False)
            section_key = key
        pieces = (
            _code_pieces(block.text, target_tokens, count_tokens)
            if getattr(block, "code", False)
            else _split_long(block.text, target_tokens, count_tokens)
        )
        for piece in pieces:
            piece_size = count_tokens(piece)
            if parts and size + piece_size > target_tokens:
                flush(keep_overlap=True)
                if size + piece_size > target_tokens:
                    parts, size = [], 0  # no room for overlap before this long piece
            parts.append(piece)
            size += piece_size
    flush(keep_overlap=False)
    return drafts
