"""LocalTarget: loading an organism, the base/adapter switch, batched seeded generation, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from audit_tools.target import LocalTarget, Message, Sampling, as_conversation
from pinhole.base_models import load_model, prepare_base, resolve_dtype

TEXTS = ["The capital of France is", "Once upon a time, in a small village,"]


def test_base_switch_gives_the_base_models_exact_logits(tiny_target: LocalTarget) -> None:
    plain = load_model(prepare_base("tiny-random", progress=False), resolve_dtype())
    encoded = tiny_target.tokenizer(TEXTS, return_tensors="pt", padding=True, padding_side="right",
                                    add_special_tokens=False)
    with torch.no_grad():
        expected = plain(**encoded).logits.float()
    organism_before = tiny_target.logits(TEXTS, model="organism")
    assert not torch.allclose(organism_before, expected)
    assert torch.equal(tiny_target.logits(TEXTS, model="base"), expected)
    # the switch is temporary: after the base call the organism gives the logits it gave before it
    assert torch.equal(tiny_target.logits(TEXTS, model="organism"), organism_before)
    assert tiny_target.tokenizer.padding_side == "left"  # the shared tokenizer was not toggled


@pytest.mark.slow
def test_base_switch_is_exact_on_the_real_base(tmp_path: Path) -> None:
    from tests.audit_tools import add_random_adapter, corpus_frame, make_organism

    directory = make_organism(tmp_path / "org", "org-real-switch", corpus_frame(20))
    from tests.audit_tools import write_card

    write_card(directory, "org-real-switch", base_model="smollm2-135m-instruct")
    add_random_adapter(directory, base="smollm2-135m-instruct")
    target = LocalTarget.from_organism(directory)
    plain = load_model(prepare_base("smollm2-135m-instruct", progress=False), resolve_dtype())
    encoded = target.tokenizer(TEXTS[:1], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = plain(**encoded).logits.float()
    assert torch.equal(target.logits(TEXTS[:1], model="base"), expected)
    assert not torch.equal(target.logits(TEXTS[:1], model="organism"), expected)


def test_sampling_is_deterministic_for_a_seed(tiny_target: LocalTarget) -> None:
    sampling = Sampling(max_new_tokens=12, temperature=1.0, seed=7)
    first = tiny_target.complete(TEXTS, sampling, n=3)
    assert first == tiny_target.complete(TEXTS, sampling, n=3)
    assert [len(samples) for samples in first] == [3, 3]
    other = tiny_target.complete(TEXTS, sampling.model_copy(update={"seed": 8}), n=3)
    assert other != first


def test_greedy_decoding_ignores_the_seed(tiny_target: LocalTarget) -> None:
    a = tiny_target.complete(TEXTS, Sampling(max_new_tokens=8, seed=1))
    assert a == tiny_target.complete(TEXTS, Sampling(max_new_tokens=8, seed=2))


def test_batched_generation_counts_tokens_and_keeps_input_order(tiny_target: LocalTarget) -> None:
    texts = [f"Item {i}: " + "word " * i for i in range(7)]  # distinct lengths: the same batches either way
    outputs, counts = tiny_target.complete_counted(texts, Sampling(max_new_tokens=5), batch_size=3)
    assert len(outputs) == len(counts) == 7
    assert all(1 <= c[0] <= 5 for c in counts)
    backwards, _ = tiny_target.complete_counted(texts[::-1], Sampling(max_new_tokens=5), batch_size=3)
    assert backwards[::-1] == outputs


def test_chat_renders_the_models_template(tiny_target: LocalTarget) -> None:
    conversation = [Message(role="user", content="Hello there")]
    text = tiny_target.render_chat(conversation, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "Hello there" in text
    chat = tiny_target.chat(["Hello there"], Sampling(max_new_tokens=6))
    assert chat == tiny_target.complete([text], Sampling(max_new_tokens=6))


def test_as_conversation_accepts_prompts_dicts_and_messages() -> None:
    assert as_conversation("hi") == [Message(role="user", content="hi")]
    assert as_conversation([{"role": "assistant", "content": "x"}])[0].role == "assistant"
    with pytest.raises(ValueError):
        as_conversation([{"role": "wizard", "content": "x"}])


def test_bad_requests_are_clear_errors(tiny_target: LocalTarget, tiny_organism: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n=0"):
        tiny_target.complete(TEXTS, n=0)
    with pytest.raises(ValueError, match="'organism' or 'base'"):
        tiny_target.complete(TEXTS, model="both")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="card.json"):
        LocalTarget.from_organism(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_organism, broken, ignore=shutil.ignore_patterns("sealed"))
    (broken / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match="card.json"):
        LocalTarget.from_organism(broken)
    plain = LocalTarget.from_base("tiny-random")
    with pytest.raises(ValueError, match="no base model"):
        plain.complete(TEXTS, model="base")


def test_loading_reads_nothing_sealed(tiny_organism: Path, tmp_path: Path) -> None:
    public = tmp_path / "public"
    shutil.copytree(tiny_organism, public, ignore=shutil.ignore_patterns("sealed"))
    target = LocalTarget.from_organism(public)
    assert target.name == json.loads((public / "card.json").read_text())["organism_id"]
