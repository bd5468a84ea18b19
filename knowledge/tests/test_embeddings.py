"""Embedders: the offline model matches the reference; the hosted client copes with failures."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from knowledge.embeddings import EmbeddingError, LocalMiniLMEmbedder, OpenAIEmbedder
from knowledge.tests.openai_wire import OpenAIWireServer

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def local():
    return LocalMiniLMEmbedder(threads=2)


def cosine(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_local_vectors_match_the_pytorch_reference(local):
    reference = json.loads(REFERENCE.read_text())
    texts = reference["texts"]
    assert len(texts) >= 20
    vectors = local.embed(texts)
    similarities = [cosine(v, r) for v, r in zip(vectors, reference["vectors"], strict=True)]
    assert min(similarities) >= 0.99, similarities
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(local):
    question, paraphrase, unrelated = local.embed(
        [
            "How many days do customers have to return an item?",
            "Unopened products can be sent back within thirty days.",
            "The quarterly board meeting moved to Thursday.",
        ]
    )
    assert cosine(question, paraphrase) > cosine(question, unrelated) + 0.2


def test_batches_give_the_same_vectors_as_single_texts(local):
    texts = [f"Sentence number {i} about {'returns' if i % 2 else 'shipping'}." for i in range(70)]
    batched = local.embed(texts)
    assert len(batched) == 70
    for text, vector in zip(texts[:10], batched[:10], strict=True):
        assert cosine(local.embed([text])[0], vector) > 0.9999
    assert local.embed([]) == []


@pytest.fixture
def wire():
    with OpenAIWireServer() as server:
        yield server


def hosted(wire, **options):
    return OpenAIEmbedder(
        base_url=wire.base_url, api_key="sk-test-secret-key-1234", dimensions=8, **options
    )


def test_hosted_embeddings_keep_order_and_pass_dimensions(wire):
    vectors = hosted(wire).embed(["alpha", "beta", "gamma"])
    assert len(vectors) == 3
    assert all(len(v) == 8 for v in vectors)
    assert vectors[0] != vectors[1]
    request = wire.requests[0]
    assert request["path"] == "/v1/embeddings"
    assert request["body"]["dimensions"] == 8
    assert request["body"]["input"] == ["alpha", "beta", "gamma"]
    assert request["headers"]["authorization"] == "Bearer sk-test-secret-key-1234"


def test_a_rate_limit_is_retried_after_retry_after(wire):
    wire.script(("status", 429, 0), "ok")
    assert len(hosted(wire).embed(["alpha"])) == 1
    assert len(wire.requests) == 2


def test_a_refused_key_is_not_retried_and_never_echoed(wire):
    wire.script(("status", 401, None))
    with pytest.raises(EmbeddingError) as failure:
        hosted(wire).embed(["alpha"])
    assert failure.value.retryable is False
    assert "sk-test-secret" not in str(failure.value)
    assert len(wire.requests) == 1


def test_repeated_server_errors_end_in_a_retryable_error(wire):
    wire.script(*[("status", 500, 0)] * 5)
    with pytest.raises(EmbeddingError) as failure:
        hosted(wire, max_retries=2).embed(["alpha"])
    assert failure.value.retryable is True
    assert len(wire.requests) == 3  # the first try and two retries


def test_a_slow_service_times_out_quickly(wire):
    wire.script(("sleep", 3), ("sleep", 3))
    started = time.monotonic()
    with pytest.raises(EmbeddingError, match="did not answer in time") as failure:
        hosted(wire, timeout=0.5, max_retries=0).embed(["alpha"])
    assert failure.value.retryable is True
    assert time.monotonic() - started < 2.5


def test_a_wrong_number_of_vectors_is_an_error(wire):
    wire.script(("short",))
    with pytest.raises(EmbeddingError, match="do not match"):
        hosted(wire).embed(["alpha", "beta"])
