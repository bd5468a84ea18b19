"""Cut a streaming reply into clauses, so speech starts as soon as one is complete."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
# A comma after a word may end a clause at the end of what has streamed so far: the next
# token would only bring the space (after a digit it may be "3,000": wait for it).
_CLAUSE_END = re.compile(r"[,;:—–]\s|(?<=[^\W\d_])[,;:—–]$")
FIRST_CLAUSE_WORDS = 2  # "Thanks for calling," may go alone: the first audio is what waits
CLAUSE_WORDS = 5  # later clauses break at a comma only when they are long enough to sound whole
MAX_WORDS = 25  # a run-on with no punctuation is cut at a space
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "no",
    "approx",
    "u.s",
    "u.k",
}


class ClauseSplitter:
    def __init__(self) -> None:
        self.buffer = ""
        self.emitted = 0

    def _cut(self) -> str | None:
        cut = None
        for sentence in _SENTENCE_END.finditer(self.buffer):
            words = self.buffer[: sentence.start()].split()
            if words and words[-1].lower().rstrip(".") in _ABBREVIATIONS:
                continue
            cut = sentence.end()
            break
        words_needed = FIRST_CLAUSE_WORDS if self.emitted == 0 else CLAUSE_WORDS
        for clause in _CLAUSE_END.finditer(self.buffer):
            if cut is not None and clause.end() > cut:
                break
            if len(self.buffer[: clause.end()].split()) >= words_needed:
                cut = clause.end()
                break
        if cut is None and len(self.buffer.split()) > MAX_WORDS:
            cut = self.buffer.rstrip().rfind(" ") + 1 or None
        if cut is None:
            return None
        clause, self.buffer = self.buffer[:cut].strip(), self.buffer[cut:]
        return clause or None

    def feed(self, text: str) -> list[str]:
        """The clauses completed by this piece of text, in order."""
        self.buffer += text
        clauses = []
        while (clause := self._cut()) is not None:
            clauses.append(clause)
            self.emitted += 1
        return clauses

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer.strip(), ""
        return [rest] if rest else []
