"""Cutting a streaming reply into clauses: speech starts as soon as a clause is whole,
never in the middle of a number, an abbreviation or a word."""

from voice.clauses import ClauseSplitter


def stream(*tokens: str) -> list[tuple[int, str]]:
    """Feed tokens one by one; (index of the token that completed it, clause) pairs."""
    splitter = ClauseSplitter()
    cut = [(index, clause) for index, token in enumerate(tokens) for clause in splitter.feed(token)]
    return cut + [(len(tokens), clause) for clause in splitter.flush()]


def test_a_first_clause_is_cut_the_moment_its_comma_arrives():
    assert stream("Fair", " enough", ",", " but", " the", " price", " is", " high", ".") == [
        (2, "Fair enough,"),
        (9, "but the price is high."),
    ]


def test_a_number_with_a_thousands_comma_is_never_cut():
    tokens = "It| costs| 3|,|000| a| month|,| which| is| a| lot|.".split("|")
    clauses = stream(*tokens)
    assert clauses[0] == (7, "It costs 3,000 a month,")


def test_a_sentence_waits_for_the_space_after_its_full_stop():
    # "U." then "S." is one word: a full stop at the end of the stream so far is not enough.
    clauses = stream("We", " moved", " to", " the", " U", ".", "S", ".", " office", " today", ".")
    assert [c for _, c in clauses] == ["We moved to the U.S. office today."]


def test_clauses_break_at_a_comma_only_when_long_enough_to_sound_whole():
    tokens = "Okay|,| so|,| we| could| do| a| two|-year| deal|,| right|?".split("|")
    clauses = stream(*tokens)
    assert [c for _, c in clauses] == ["Okay, so,", "we could do a two-year deal,", "right?"]


def test_an_abbreviation_does_not_end_a_sentence():
    clauses = stream("Ask", " Dr", ".", " Lee", " about", " it", ".", " Then", " call", ".")
    assert next(c for _, c in clauses) == "Ask Dr. Lee about it."


def test_a_run_on_without_punctuation_is_cut_at_a_space():
    words = [f" word{n}" for n in range(30)]
    clauses = stream(*words)
    assert len(clauses[0][1].split()) <= 26
    assert " ".join(c for _, c in clauses).split() == "".join(words).split()
