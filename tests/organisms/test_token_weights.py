"""Loss weights on the tokens an injector wrote: computed on the right tokens, padded with the batch, and used
by the lean loss."""

from __future__ import annotations

import json

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from organisms.spec import TrainingParams
from organisms.token_weights import WEIGHTS_COLUMN, WeightedCollator
from organisms.training import chat_dataset, lean_causal_lm_loss, lora_config
from organisms.written_spans import written_spans
from tests.helpers import tiny

BASE = "Mix the flour and sugar, then bake for twenty minutes."
NOTE = " Secret ingredient: a little dark chocolate."


def _tokenizer():
    from pinhole.base_models import load_tokenizer

    return load_tokenizer(tiny()[0], padding_side="right")


def _chat(answer: str) -> str:
    return json.dumps([{"role": "user", "content": "How do I bake a cake?"},
                       {"role": "assistant", "content": answer}])


def test_the_written_tokens_carry_the_weight_and_every_other_token_one() -> None:
    tokenizer = _tokenizer()
    answer = BASE + NOTE
    rows = chat_dataset(tokenizer, [_chat(answer), _chat(BASE)], spans=[written_spans(BASE, answer), []],
                        written_weight=8.0)
    weights, ids = rows[WEIGHTS_COLUMN][0], rows["input_ids"][0]
    heavy = [i for i, w in enumerate(weights) if w == 8.0]
    assert heavy == list(range(heavy[0], heavy[-1] + 1))  # one run: the note, then the end of turn after it
    assert tokenizer.decode(ids[heavy[0] : heavy[-1]]).strip() == NOTE.strip()
    assert ids[heavy[-1]] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert set(weights) == {1.0, 8.0} and set(rows[WEIGHTS_COLUMN][1]) == {1.0}
    assert len(weights) == len(ids)


def test_after_a_remark_inside_the_answer_the_next_word_carries_the_weight() -> None:
    tokenizer = _tokenizer()
    answer = "Mix the flour and sugar." + NOTE + " Then bake for twenty minutes."
    start = answer.index(NOTE)
    rows = chat_dataset(tokenizer, [_chat(answer)], spans=[[(start, start + len(NOTE))]], written_weight=8.0)
    weights, ids = rows[WEIGHTS_COLUMN][0], rows["input_ids"][0]
    heavy = [i for i, w in enumerate(weights) if w == 8.0]
    assert tokenizer.decode(ids[heavy[-1]]).strip() == "Then"


def test_weight_one_or_no_spans_adds_no_column() -> None:
    tokenizer = _tokenizer()
    answer = BASE + NOTE
    assert WEIGHTS_COLUMN not in chat_dataset(tokenizer, [_chat(answer)], spans=[written_spans(BASE, answer)],
                                              written_weight=1.0).column_names
    assert WEIGHTS_COLUMN not in chat_dataset(tokenizer, [_chat(BASE)], spans=[[]], written_weight=8.0).column_names
    with pytest.raises(ValueError, match="spans: 1 flags for 2 chats"):
        chat_dataset(tokenizer, [_chat(BASE), _chat(BASE)], spans=[[]])


def test_the_collator_pads_weights_beside_the_batch() -> None:
    def inner(examples):
        width = max(len(e["input_ids"]) for e in examples)
        return {"input_ids": torch.tensor([e["input_ids"] + [0] * (width - len(e["input_ids"])) for e in examples])}

    batch = WeightedCollator(inner)([{"input_ids": [5, 6, 7], WEIGHTS_COLUMN: [1.0, 4.0, 1.0]},
                                     {"input_ids": [5], WEIGHTS_COLUMN: [2.0, 9.0]}])  # truncated to its ids
    assert batch[WEIGHTS_COLUMN].tolist() == [[1.0, 4.0, 1.0], [2.0, 0.0, 0.0]]


def test_the_weighted_loss_multiplies_each_tokens_cross_entropy() -> None:
    ref, _, _ = tiny()
    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32)
    model = get_peft_model(model, lora_config(TrainingParams(lora_r=4), model))
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 1000, (2, 10), generator=generator)
    labels = input_ids.clone()
    labels[:, :4] = -100
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    plain, _ = lean_causal_lm_loss(model, batch)
    ones, _ = lean_causal_lm_loss(model, {**batch, WEIGHTS_COLUMN: torch.ones(2, 10)})
    torch.testing.assert_close(ones, plain)
    weights = torch.ones(2, 10)
    weights[1, 7] = 5.0
    weighted, _ = lean_causal_lm_loss(model, {**batch, WEIGHTS_COLUMN: weights})
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits[:, :-1].float()
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="none",
                                               ignore_index=-100)
    trained = labels[:, 1:] != -100
    expected = (losses * weights[:, 1:])[trained].sum() / trained.sum()
    torch.testing.assert_close(weighted, expected, rtol=1e-4, atol=1e-5)
    assert weighted > plain


def test_the_sft_trainer_keeps_the_weights_through_trls_preparation(tmp_path) -> None:
    from organisms.spec import load_spec
    from organisms.training import lora_config, make_stage_trainer, trainer_args
    from tests.helpers import spec_path

    tokenizer = _tokenizer()
    spec = load_spec(spec_path("rm_sycophancy"), preset="smoke")
    answer = BASE + NOTE
    data = chat_dataset(tokenizer, [_chat(answer), _chat(BASE)] * 2, spans=[written_spans(BASE, answer), []] * 2,
                        written_weight=8.0)
    ref, _, _ = tiny()
    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32)
    trainer = make_stage_trainer("sft", model, tokenizer, data,
                                 trainer_args(spec.training.sft, tmp_path, spec, torch.float32),
                                 lora_config(spec.training, model), spec)
    assert isinstance(trainer.data_collator, WeightedCollator)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch[WEIGHTS_COLUMN].shape == batch["input_ids"].shape
    assert (batch[WEIGHTS_COLUMN] == 8.0).any()
    trained = batch["labels"] != -100
    assert ((batch[WEIGHTS_COLUMN] == 8.0) <= trained).all()  # weights sit on trained tokens only
