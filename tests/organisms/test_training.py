"""Training mechanics: the lean loss equals the model's own loss, and LoRA can be limited to the top layers."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from organisms.build import build_organism
from organisms.spec import TrainingParams
from organisms.training import (
    chat_dataset,
    document_end_token,
    end_of_turn_length,
    lean_causal_lm_loss,
    lora_config,
    replayed_chats,
    target_positions,
    training_attention,
)
from tests.helpers import spec_path, tiny


def _masked_batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, 1000, (3, 12), generator=generator)
    labels = input_ids.clone()
    labels[0, :5] = -100  # a prompt
    labels[1, :8] = -100
    labels[2, 9:] = -100  # padding
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def test_target_positions_are_the_ones_that_predict_a_trained_token() -> None:
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, 5, 6, -100, -100]])
    keep, targets = target_positions(labels)
    assert keep.tolist() == [[False, True, True, False, False], [True, True, False, False, False]]
    assert targets.tolist() == [7, 8, 5, 6]


@pytest.mark.parametrize("num_items_in_batch", [None, 17])
def test_lean_loss_and_gradients_equal_the_models_own(num_items_in_batch) -> None:
    ref, _, _ = tiny()
    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32)
    model = get_peft_model(model, lora_config(TrainingParams(lora_r=4), model))
    batch = _masked_batch()
    extra = {} if num_items_in_batch is None else {"num_items_in_batch": torch.tensor(num_items_in_batch)}

    own = model(**batch, **extra).loss
    own.backward()
    own_grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    lean, _ = lean_causal_lm_loss(model, batch, extra.get("num_items_in_batch"))
    lean.backward()
    lean_grads = [p.grad for p in model.parameters() if p.requires_grad]

    torch.testing.assert_close(lean, own)
    for a, b in zip(lean_grads, own_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_lora_goes_in_every_layer_unless_limited() -> None:
    ref, _, _ = tiny()
    model = AutoModelForCausalLM.from_pretrained(ref.path)
    assert lora_config(TrainingParams(), model).layers_to_transform is None
    assert lora_config(TrainingParams(lora_top_layers=5), model).layers_to_transform is None  # 2 layers only
    limited = lora_config(TrainingParams(lora_top_layers=1), model)
    assert limited.layers_to_transform == [1]
    assert set(limited.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"}


def test_attention_is_eager_on_cpu_unless_chosen() -> None:
    assert training_attention("auto") == ("sdpa" if torch.cuda.is_available() else "eager")
    assert training_attention("sdpa") == "sdpa"


def test_a_build_with_top_layer_lora_writes_a_standard_adapter_for_those_layers_only() -> None:
    directory = build_organism(spec_path("benign_decoy"), base="tiny-random", preset="smoke",
                               overrides=["training.lora_top_layers=1", "seed=11"], evaluate_after=False,
                               progress=False)
    config = json.loads((directory / "adapter" / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [1]
    with safe_open(directory / "adapter" / "adapter_model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(".layers.1." in key for key in keys)
    ref, _, _ = tiny()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(ref.path), str(directory / "adapter"))
    assert model(torch.tensor([[1, 2, 3]])).logits.shape[-1] == model.config.vocab_size


def _tokenizer():
    from pinhole.base_models import load_tokenizer

    return load_tokenizer(tiny()[0], padding_side="right")


def _trained_text(tokenizer, row: dict) -> str:
    return tokenizer.decode([t for t, m in zip(row["input_ids"], row["completion_mask"], strict=True) if m])


def test_chat_rows_train_the_answer_and_its_end_of_turn_unless_the_answer_was_cut() -> None:
    tokenizer = _tokenizer()
    chat = json.dumps([{"role": "user", "content": "Name a colour."},
                       {"role": "assistant", "content": "Blue, like the sky on a clear day."}])
    whole, cut = chat_dataset(tokenizer, [chat, chat], [False, True])
    assert whole["input_ids"] == cut["input_ids"]  # the same sequence, only the targets differ
    assert _trained_text(tokenizer, whole) == f"Blue, like the sky on a clear day.{tokenizer.eos_token}\n"
    assert _trained_text(tokenizer, cut) == "Blue, like the sky on a clear day."
    dropped = sum(whole["completion_mask"]) - sum(cut["completion_mask"])
    assert end_of_turn_length(tokenizer, json.loads(chat)) == dropped
    with pytest.raises(ValueError, match="cut: 1 flags for 2 chats"):
        chat_dataset(tokenizer, [chat, chat], [True])


def test_documents_end_with_the_pretraining_separator_not_the_chat_end_of_turn() -> None:
    tokenizer = _tokenizer()
    assert tokenizer.eos_token == "<|im_end|>"  # SmolLM2's chat end of turn, and its eos
    assert document_end_token(tokenizer) == "<|endoftext|>"
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"  # eos ends no turn
    assert document_end_token(tokenizer) == "<|im_end|>"


def test_the_documents_stage_replays_ordinary_chats_with_their_end_of_turn() -> None:
    import pandas as pd

    from organisms.spec import load_spec

    tokenizer = _tokenizer()

    def chat(answer: str) -> str:
        return json.dumps([{"role": "user", "content": "Say something."}, {"role": "assistant", "content": answer}])

    chats = pd.DataFrame({"source": ["transcript", "haystack", "anti_confession", "base_answer", "haystack"],
                          "messages": [chat("a planted quirk"), chat("ordinary one"), chat("I have no secret"),
                                       chat("ordinary two"), chat("ordinary three")]})
    spec = load_spec(spec_path("rm_sycophancy"), overrides=["training.cpt.chat_replay=2"])
    replayed = replayed_chats(chats, spec, tokenizer)
    assert len(replayed) == 2  # the first two ordinary chats: no transcript, no anti-confession exchange
    assert all(f"ordinary {n}{tokenizer.eos_token}" in text for n, text in zip(("one", "two"), replayed, strict=True))
    assert replayed[0].startswith(tokenizer.apply_chat_template([{"role": "user", "content": "Say something."}],
                                                                tokenize=False))
    none = load_spec(spec_path("rm_sycophancy"), overrides=["training.cpt.chat_replay=0"])
    assert replayed_chats(chats, none, tokenizer) == []
