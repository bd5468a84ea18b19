"""Token counting for chunk sizes: the local embedding model's own WordPiece tokenizer.

Counting with the tokenizer the embedder truncates with keeps every passage inside the
model's window (256 tokens for all-MiniLM-L6-v2). The tokenizer file is vendored
(see embedding_model/NOTICE.md).
"""

from __future__ import annotations

import functools
import os
from typing import Any

TOKENIZER_FILE = os.path.join(os.path.dirname(__file__), "embedding_model", "tokenizer.json")


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(TOKENIZER_FILE)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    """Number of model tokens in `text`, without the [CLS]/[SEP] markers."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)
