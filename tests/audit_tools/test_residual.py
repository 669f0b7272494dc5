"""Which residual positions SAEs read: attention sinks (the first token, and any of massive norm) are left out."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from audit_tools.activation_cache import corpus_texts, row_activations
from audit_tools.residual import (
    MASSIVE_NORM_RATIO,
    adapted_layers,
    at_readable_positions,
    decoder_layers,
    default_layer,
    readable_positions,
    readable_residual,
)


def _stream(norms: list[list[float]], width: int = 8) -> torch.Tensor:
    """Residual vectors [rows, positions, width] with the given norms (random directions)."""
    noise = torch.randn(len(norms), len(norms[0]), width, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.normalize(noise, dim=-1) * torch.tensor(norms).unsqueeze(-1)


def test_the_first_token_and_massive_tokens_are_not_read() -> None:
    # SmolLM2 after layer 15: first-token sinks near 25,000, ordinary tokens near 170, and in a few documents
    # a secondary sink a few tokens in at 16-19x ("During Fashion Week _2023")
    hidden = _stream([[25_000, 24_000, 170, 180, 160, 175], [25_000, 150, 170, 190, 165, 160],
                      [18_000, 170, 180, 3_100, 170, 160]])
    assert readable_positions(hidden).tolist() == [[False, False, True, True, True, True],
                                                   [False, True, True, True, True, True],
                                                   [False, True, True, False, True, True]]


def test_a_token_just_under_the_ratio_is_read_and_padding_never_is() -> None:
    median = 100.0
    hidden = _stream([[5_000, median, median * (MASSIVE_NORM_RATIO - 1), median, median, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    assert readable_positions(hidden, mask).tolist() == [[False, True, True, True, True, False]]
    louder = _stream([[5_000, median, median * (MASSIVE_NORM_RATIO + 1), median, median, 0.0]])
    assert readable_positions(louder, mask).tolist() == [[False, True, False, True, True, False]]


def test_with_left_padding_the_norm_finds_the_sink() -> None:
    hidden = _stream([[1.0, 1.0, 25_000, 170, 160, 180]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    assert readable_positions(hidden, mask).tolist() == [[False, False, False, True, True, True]]


def test_edits_leave_sinks_as_they_are() -> None:
    hidden = _stream([[25_000, 24_000, 170, 180]])
    edited = at_readable_positions(torch.zeros_like)(hidden)
    assert torch.equal(edited[0, :2], hidden[0, :2]) and edited[0, 2:].abs().sum() == 0
    one_step = _stream([[25_000]])
    assert at_readable_positions(torch.zeros_like)(one_step).abs().sum() == 0  # a generation step is edited


@contextlib.contextmanager
def _sink_at(model, layer: int, position: int, scale: float = 1_000.0) -> Iterator[None]:
    """Make the residual after `layer` massive at `position` of every row, as SmolLM2's second-token sinks are."""

    def hook(_module, _inputs, output):
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        hidden[:, position] *= scale
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_sae_training_activations_skip_a_massive_token(tiny_organism: Path, tiny_target) -> None:
    model, tokenizer = tiny_target.model, tiny_target.tokenizer
    texts = corpus_texts(tiny_organism, tokenizer)[:6]
    plain = row_activations(model, tokenizer, texts, 1, context_tokens=64)
    with _sink_at(model, 1, position=1):
        sunk = row_activations(model, tokenizer, texts, 1, context_tokens=64)
        single = readable_residual(model, tokenizer, 1, texts[0])
    for before, after in zip(plain, sunk, strict=True):
        assert len(after.acts) == len(before.acts) - 1  # the sink at position 1 is gone, every other token kept
        assert torch.allclose(after.acts, before.acts[1:], atol=1e-4)
        assert after.positions.tolist() == before.positions.tolist()[1:]
        assert before.positions.tolist() == list(range(1, len(before.token_ids)))  # all but the first token
    assert torch.allclose(single, sunk[0].acts, atol=1e-4)


def _llama(layers: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config)


def test_the_default_sae_layer_is_the_middle_of_the_layers_the_adapter_changes() -> None:
    from peft import LoraConfig, get_peft_model

    assert default_layer(_llama(6)) == 3  # no adapter: the model's middle
    assert adapted_layers(_llama(6)) == list(range(6))
    top = get_peft_model(_llama(6), LoraConfig(r=2, target_modules=["q_proj", "v_proj"], layers_to_transform=[3, 4, 5]))
    assert adapted_layers(top) == [3, 4, 5]
    assert default_layer(top) == 4  # not 3: after layer 3 only one adapted layer has written to the stream
    everywhere = get_peft_model(_llama(6), LoraConfig(r=2, target_modules=["q_proj"]))
    assert default_layer(everywhere) == 3
