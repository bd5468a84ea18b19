"""Embedders: the offline model matches PyTorch; the hosted client copes with a real server.

The local tests run the shipped int8 ONNX model. The reference vectors were computed once
with the float32 PyTorch weights by bench/make_minilm_reference.py (its header says how).
The hosted tests drive the real `openai` SDK against `openai_wire.OpenAIWireServer`, a
local HTTP server speaking the OpenAI wire format; nothing in the SDK is patched.
"""

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from knowledge.embeddings import (
    EmbeddingError,
    LocalMiniLMEmbedder,
    OpenAIEmbedder,
    get_embedder,
)
from knowledge.tests.openai_wire import (
    Answer,
    Delay,
    Fail,
    FloatsOnly,
    OpenAIWireServer,
    Redirect,
    WrongCount,
    WrongDimensions,
    wire_vector,
)

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
KEY = "sk-test-secret-key-1234567890"


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def unit(vector):
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


@pytest.fixture(scope="module")
def local():
    return LocalMiniLMEmbedder(threads=2)


# ------------------------------------------------------------------ local model


def test_local_vectors_match_the_pytorch_reference(local):
    reference = json.loads(REFERENCE.read_text())
    texts = reference["texts"]
    assert len(texts) >= 20
    assert sum(tokens > 256 for tokens in reference["tokens"]) >= 3  # cut at the window
    assert any("Клиент" in text for text in texts)
    assert any("def " in text for text in texts)

    vectors = local.embed(texts)

    assert len(vectors) == len(texts)
    assert all(len(vector) == 384 for vector in vectors)
    assert all(abs(np.linalg.norm(vector) - 1) < 1e-5 for vector in vectors)
    similarities = [cosine(v, r) for v, r in zip(vectors, reference["vectors"], strict=True)]
    worst = min(range(len(texts)), key=similarities.__getitem__)
    assert similarities[worst] >= 0.99, (texts[worst][:60], similarities[worst])
    assert np.mean(similarities) >= 0.995, similarities


@pytest.mark.parametrize(
    ("query", "paraphrase", "unrelated"),
    [
        (
            "How many days do customers have to return an item?",
            "Unopened products can be sent back within thirty days.",
            "The quarterly board meeting moved to Thursday.",
        ),
        (
            "The customer says our price is too expensive.",
            "The client thinks the product costs too much.",
            "Batteries are not covered by the warranty.",
        ),
        (
            "How do I reset my password?",
            "Steps to change a forgotten login password",
            "Express delivery arrives the next working day.",
        ),
    ],
)
def test_a_paraphrase_is_closer_than_an_unrelated_sentence(local, query, paraphrase, unrelated):
    q, p, u = local.embed([query, paraphrase, unrelated])
    assert cosine(q, p) > cosine(q, u) + 0.2


def test_a_batch_gives_the_same_vectors_as_single_texts(local):
    words = "returns shipping warranty invoice refund battery password discount".split()
    texts = [
        " ".join(words[(i + j) % len(words)] for j in range(1 + (i * 7) % 40))
        + (" long tail" * 150 if i % 23 == 0 else "")  # a few beyond 256 tokens
        for i in range(70)
    ]
    texts[5] = ""
    texts[6] = "Le client souhaite annuler sa commande."

    batched = local.embed(texts)

    assert len(batched) == 70
    for text, vector in zip(texts, batched, strict=True):
        (single,) = local.embed([text])
        assert cosine(single, vector) > 0.9999, text[:40]
    assert local.embed([]) == []


def test_texts_are_cut_after_256_tokens_not_before(local):
    body = "warranty claims need the serial number and the date of purchase . " * 30  # ~360
    head = body.split()
    late_a = " ".join([*head, "completely", "different", "ending"])
    late_b = " ".join([*head, "another", "unrelated", "sentence"])
    middle = head.copy()
    middle[150:170] = ["penguins"] * 20  # inside the 256-token window, past 128

    base, same, changed = local.embed([late_a, late_b, " ".join(middle)])

    assert cosine(base, same) > 0.9999  # the tails lie beyond the window
    assert cosine(base, changed) < 0.995  # tokens 150-170 are seen (tokenizer.json says 128)


def test_the_model_loads_once_and_is_shared_between_threads():
    embedders = [LocalMiniLMEmbedder(threads=2) for _ in range(4)]
    barrier = threading.Barrier(4)
    results = [None] * 4

    def work(index):
        barrier.wait()
        results[index] = embedders[index].embed(["Where is my parcel?", "Refund policy"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert all(result is not None for result in results)
    assert all(np.allclose(result, results[0], atol=1e-6) for result in results)
    sessions = {id(embedder._model().session) for embedder in embedders}
    assert len(sessions) == 1


def test_the_thread_count_reaches_onnxruntime():
    options = LocalMiniLMEmbedder(threads=1)._model().session.get_session_options()
    assert options.intra_op_num_threads == 1
    options = LocalMiniLMEmbedder()._model().session.get_session_options()
    assert options.intra_op_num_threads == 2


def test_a_bare_string_is_refused(local):
    with pytest.raises(TypeError):
        local.embed("one text, not a list")


# ------------------------------------------------------------------ hosted API


@pytest.fixture
def wire():
    with OpenAIWireServer(api_key=KEY) as server:
        yield server


def hosted(wire, api_key=KEY, **options):
    options.setdefault("dimensions", 8)
    return OpenAIEmbedder(wire.base_url, api_key, **options)


def test_hosted_vectors_keep_their_order_and_the_dimensions_are_passed(wire):
    texts = ["alpha", "beta", "gamma"]

    vectors = hosted(wire).embed(texts)

    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, unit(wire_vector(text, 8)), atol=1e-6)  # decoded, normalised
    (request,) = wire.requests
    assert request.path == "/v1/embeddings"
    assert request.body["model"] == "text-embedding-3-small"
    assert request.body["input"] == texts
    assert request.body["dimensions"] == 8
    assert request.body["encoding_format"] == "base64"  # what the SDK asks for
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert hosted(wire).model_id == "openai/text-embedding-3-small@8"


def test_a_server_answering_floats_instead_of_base64_works_too(wire):
    wire.script(FloatsOnly())
    (vector,) = hosted(wire).embed(["alpha"])
    assert np.allclose(vector, unit(wire_vector("alpha", 8)), atol=1e-6)


def test_hosted_batches_keep_the_order_and_blank_texts_are_accepted(wire):
    texts = ["one", "", "three", "four", "five"]

    vectors = hosted(wire, batch_size=2).embed(texts)

    assert [r.body["input"] for r in wire.requests] == [["one", " "], ["three", "four"], ["five"]]
    assert np.allclose(vectors[4], unit(wire_vector("five", 8)), atol=1e-6)
    assert hosted(wire).embed([]) == []
    assert len(wire.requests) == 3


def test_a_rate_limit_is_retried_after_retry_after(wire):
    wire.script(Fail(429, "Rate limit reached", retry_after="0", type="requests"))
    started = time.monotonic()

    (vector,) = hosted(wire).embed(["alpha"])

    assert len(vector) == 8
    assert len(wire.requests) == 2
    assert time.monotonic() - started < 3


def test_a_plain_rate_limit_gets_six_attempts_honouring_retry_after(wire):
    wire.script(*[Fail(429, "Rate limit reached", retry_after="0", type="requests")] * 5)
    (vector,) = hosted(wire).embed(["alpha"])
    assert len(vector) == 8
    assert len(wire.requests) == 6


def test_a_rate_limit_that_persists_is_retryable(wire):
    wire.script(*[Fail(429, retry_after="0")] * 3)
    with pytest.raises(EmbeddingError, match="429") as failure:
        hosted(wire, max_retries=1).embed(["alpha"])
    assert failure.value.retryable is True
    assert len(wire.requests) == 2


def test_a_refused_key_is_not_retried_and_never_echoed(wire):
    wrong = "sk-test-WRONG-secret-0987654321"

    with pytest.raises(EmbeddingError, match="EMBEDDING_API_KEY") as failure:
        hosted(wire, api_key=wrong).embed(["alpha"])

    assert failure.value.retryable is False
    assert len(wire.requests) == 1
    assert wrong in json.dumps(wire.requests[0].headers)  # it was sent, and the server echoed it
    assert wrong not in str(failure.value)
    assert "WRONG" not in repr(failure.value)
    assert wrong not in repr(hosted(wire, api_key=wrong))


def test_a_missing_key_says_so(wire):
    with pytest.raises(EmbeddingError, match="needs an API key") as failure:
        hosted(wire, api_key="").embed(["alpha"])
    assert failure.value.retryable is False


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (400, "rejected the request (HTTP 400): Invalid input for key [redacted]"),
        (403, "denied access"),
        (404, "EMBEDDING_MODEL"),
        (422, "HTTP 422"),
    ],
    ids=["400", "403", "404", "422"],
)
def test_client_errors_are_final_and_readable(wire, status, words):
    wire.script(Fail(status, f"Invalid input for key {KEY}", type="invalid_request_error"))

    with pytest.raises(EmbeddingError) as failure:
        hosted(wire).embed(["alpha"])

    assert failure.value.retryable is False
    assert words in str(failure.value)
    assert KEY not in str(failure.value)
    assert len(wire.requests) == 1  # not retried


def test_repeated_server_errors_end_in_a_retryable_error(wire):
    wire.script(*[Fail(500, retry_after="0")] * 5)

    with pytest.raises(EmbeddingError, match="HTTP 500") as failure:
        hosted(wire, max_retries=2).embed(["alpha"])

    assert failure.value.retryable is True
    assert len(wire.requests) == 3  # the first try and two retries


def test_a_slow_service_times_out_within_a_bounded_time(wire):
    wire.script(Delay(5), Delay(5))
    started = time.monotonic()

    with pytest.raises(EmbeddingError, match="did not answer in time") as failure:
        hosted(wire, timeout=0.5, max_retries=1).embed(["alpha"])

    elapsed = time.monotonic() - started
    assert failure.value.retryable is True
    assert len(wire.requests) == 2
    assert 1.0 <= elapsed < 3.5  # two 0.5 s tries and at most one 0.5 s back-off


def test_an_unreachable_service_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    embedder = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", KEY, max_retries=0, timeout=2)
    with pytest.raises(EmbeddingError, match="could not be reached") as failure:
        embedder.embed(["alpha"])
    assert failure.value.retryable is True


@pytest.mark.parametrize("behaviour", [WrongCount(-1), WrongCount(+1), WrongDimensions()])
def test_vectors_that_do_not_fit_the_request_are_an_error(wire, behaviour):
    wire.script(behaviour)
    with pytest.raises(EmbeddingError, match="do not match") as failure:
        hosted(wire).embed(["alpha", "beta"])
    assert failure.value.retryable is False


# ------------------------------------------------------------------ choosing one


def test_the_local_model_is_the_default_and_built_once(settings):
    settings.EMBEDDING_PROVIDER = "local"
    settings.EMBEDDING_THREADS = 2
    embedder = get_embedder()
    assert isinstance(embedder, LocalMiniLMEmbedder)
    assert embedder.model_id == "local/all-MiniLM-L6-v2-int8"
    assert embedder.dimensions == 384
    assert get_embedder() is embedder


def test_missing_settings_fall_back_to_the_local_model(settings):
    for name in (
        "EMBEDDING_PROVIDER",
        "EMBEDDING_MODEL",
        "EMBEDDING_DIMENSIONS",
        "EMBEDDING_THREADS",
    ):
        delattr(settings, name)
    assert isinstance(get_embedder(), LocalMiniLMEmbedder)


def test_the_hosted_provider_comes_from_settings(settings, wire):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.EMBEDDING_BASE_URL = wire.base_url
    settings.EMBEDDING_API_KEY = KEY
    settings.EMBEDDING_MODEL = "text-embedding-3-small"
    settings.EMBEDDING_DIMENSIONS = 8
    settings.EMBEDDING_TIMEOUT_SECONDS = 5.0

    embedder = get_embedder()

    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.model_id == "openai/text-embedding-3-small@8"
    assert embedder.timeout == 5.0
    assert get_embedder() is embedder
    assert len(embedder.embed(["alpha"])[0]) == 8
    settings.EMBEDDING_DIMENSIONS = 16
    assert get_embedder().model_id == "openai/text-embedding-3-small@16"


def test_an_unknown_provider_is_a_configuration_error(settings):
    settings.EMBEDDING_PROVIDER = "cohere"
    with pytest.raises(ImproperlyConfigured, match="local' or 'openai"):
        get_embedder()


def test_a_redirect_from_the_endpoint_is_not_followed(wire):
    with OpenAIWireServer() as elsewhere:
        wire.script(Redirect(f"{elsewhere.base_url}/embeddings", status=308))
        with pytest.raises(EmbeddingError, match="redirect") as failure:
            hosted(wire).embed(["alpha"])
        assert elsewhere.requests == []  # the texts never reached the other address
    assert failure.value.retryable is False


def test_an_exhausted_quota_is_a_billing_problem_and_not_retried(wire):
    wire.script(Fail(429, "You exceeded your current quota.", type="insufficient_quota",
                     code="insufficient_quota", retry_after="0"))  # fmt: skip
    with pytest.raises(EmbeddingError) as failure:
        hosted(wire).embed(["alpha"])
    assert str(failure.value).startswith("The embedding provider account has run out of credit")
    assert failure.value.retryable is False
    assert len(wire.requests) == 1


def test_an_empty_json_answer_is_our_error(wire):
    wire.script(Answer({}))
    with pytest.raises(EmbeddingError, match=r"could not read|do not match"):
        hosted(wire).embed(["alpha"])
