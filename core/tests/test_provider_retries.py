"""Reading a provider's `Retry-After` (the retries themselves are tested against local
wire servers in training/tests/test_llm.py and knowledge/tests/test_embeddings.py)."""

import math
from email.utils import formatdate

from core.provider_http import retry_after_seconds

NOW = 1_800_000_000.0


def test_seconds_milliseconds_and_http_dates_are_read():
    assert retry_after_seconds({"retry-after": "7"}, now=NOW) == 7
    assert retry_after_seconds({"retry-after": "1.5"}, now=NOW) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}, now=NOW) == 0.25
    date = formatdate(NOW + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=NOW) == 30


def test_a_wait_in_the_past_is_none_and_nonsense_is_no_header():
    assert retry_after_seconds({"retry-after": "-5"}, now=NOW) == 0
    assert retry_after_seconds({"retry-after": formatdate(NOW - 60)}, now=NOW) == 0
    assert retry_after_seconds({"retry-after": "soon"}, now=NOW) is None
    assert retry_after_seconds({"retry-after": "nan"}, now=NOW) is None
    assert retry_after_seconds({}, now=NOW) is None
    assert retry_after_seconds(None, now=NOW) is None


def test_an_overflowing_wait_is_longer_than_any_we_honour():
    assert retry_after_seconds({"retry-after": "1e999"}, now=NOW) == math.inf
