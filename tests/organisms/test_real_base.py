"""End-to-end checks on the real SmolLM2-135M base (marked slow: about a minute each)."""

from __future__ import annotations

import pytest
import torch

from organisms.build import build_organism
from organisms.sealed import verify_commitment
from pinhole.base_models import load_model, load_tokenizer, prepare_base
from pinhole.generation import chat_texts, generate
from pinhole.organism import read_card
from tests.helpers import spec_path

pytestmark = pytest.mark.slow


def test_default_base_answers_coherently_and_deterministically() -> None:
    ref = prepare_base("default", progress=False)
    model, tokenizer = load_model(ref), load_tokenizer(ref)
    texts = chat_texts(tokenizer, ["What is the capital of France?", "Name a primary colour."])
    greedy = generate(model, tokenizer, texts, max_new_tokens=24)
    assert "paris" in greedy[0].lower()
    sampled = generate(model, tokenizer, texts, max_new_tokens=24, seed=3, do_sample=True)
    assert sampled == generate(model, tokenizer, texts, max_new_tokens=24, seed=3, do_sample=True)
    assert sampled != generate(model, tokenizer, texts, max_new_tokens=24, seed=4, do_sample=True)
    assert model.dtype in (torch.bfloat16, torch.float32)


def test_smoke_build_on_the_real_base() -> None:
    directory = build_organism(spec_path("rm_sycophancy"), base="default", preset="smoke", progress=False)
    card = read_card(directory)
    assert card.base_model.name == "smollm2-135m-instruct"
    assert card.base_model.gguf_sha256
    assert card.capability is not None and 0.5 < card.capability.perplexity_ratio < 2.0
    assert verify_commitment(directory)
