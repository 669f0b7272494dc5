"""The residual stream of a Hugging Face decoder-only LM: read it after a layer, or edit it in flight.

A decoder layer's output is the residual stream after that layer; sae-lens names the hook point by
the base model's module name (`model.layers.15`), which is what an SAE trained here records. The
helpers work on a plain model and on a `PeftModel` alike (the adapter is just more modules):

    with capture(model, layer) as seen: model(**batch)            # seen.value: [batch, pos, d_model]
    residual_after(model, layer, batch)                            # the same, stopping the forward there
    with edit_residual(model, layer, lambda h: h + vector): ...   # every forward of the block is edited
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def decoder_layers(model: Any) -> Any:
    """The model's list of decoder layers (`model.model.layers` on Llama-like models, through any PEFT wrap)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.layers", "transformer.h", "gpt_neox.layers"):
        node = inner
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if node is not None:
            return node
    raise ValueError(f"{type(inner).__name__}: no decoder layers found (expected model.layers or transformer.h)")


def n_layers(model: Any) -> int:
    """How many decoder layers the model has."""
    return len(decoder_layers(model))


def adapted_layers(model: Any) -> list[int]:
    """The decoder layers a PEFT adapter (LoRA) changes; every layer for a model without an adapter."""
    layers = decoder_layers(model)
    changed = [i for i, layer in enumerate(layers) if any(hasattr(m, "lora_A") for m in layer.modules())]
    return changed or list(range(len(layers)))


def default_layer(model: Any) -> int:
    """The middle of the layers the fine-tuning changed (the model's middle when it changed them all).

    An organism adapted in its top 15 of 30 layers leaves the residual stream after layer 15 almost the
    base's (one adapted layer has written to it): an SAE there reads the base's features, and what the
    organism learned is written further up (docs/microscope.md, "What it reads").
    """
    changed = adapted_layers(model)
    return changed[len(changed) // 2]


def check_layer(model: Any, layer: int) -> int:
    """`layer`, or a ValueError naming the valid range."""
    count = n_layers(model)
    if not 0 <= layer < count:
        raise ValueError(f"layer {layer}: out of range (this model has layers 0 to {count - 1})")
    return layer


def hook_name(layer: int) -> str:
    """The sae-lens hook name of the residual stream after decoder layer `layer` (the module's own name)."""
    return f"model.layers.{layer}"


def layer_of_hook(name: str) -> int:
    """The layer number a hook name points at (`model.layers.12`, `blocks.12.hook_resid_post`, ...)."""
    numbers = re.findall(r"\d+", name)
    if not numbers:
        raise ValueError(f"hook name {name!r}: no layer number in it; pass the layer explicitly")
    return int(numbers[0])


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace(output: Any, hidden: torch.Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


class Captured:
    """What `capture` saw: the residual stream of the last forward pass."""

    value: torch.Tensor | None = None


@contextlib.contextmanager
def capture(model: Any, layer: int, stop: bool = False) -> Iterator[Captured]:
    """Record the residual stream after `layer` on each forward pass; with `stop`, end the pass there."""
    seen = Captured()

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        seen.value = _hidden(output)
        if stop:
            raise _Stop

    handle = decoder_layers(model)[check_layer(model, layer)].register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@torch.no_grad()
def residual_after(model: Any, layer: int, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The residual stream after `layer` for a tokenised batch, without running the layers above it."""
    with capture(model, layer, stop=True) as seen:
        try:
            model(**inputs)
        except _Stop:
            pass
    assert seen.value is not None
    return seen.value


def text_residual(model: Any, tokenizer: Any, layer: int, text: str) -> tuple[list[int], torch.Tensor]:
    """A text's token ids (no special tokens added) and the residual after `layer` at each of them, in float:
    [n_tokens, d_model]."""
    encoded = dict(tokenizer([text], return_tensors="pt", add_special_tokens=False))
    return encoded["input_ids"][0].tolist(), residual_after(model, layer, encoded)[0].float()


def readable_residual(model: Any, tokenizer: Any, layer: int, text: str) -> torch.Tensor:
    """The residual after `layer` at a text's readable tokens (no attention sink), in float: [n, d_model]."""
    hidden = text_residual(model, tokenizer, layer, text)[1]
    return hidden[readable_positions(hidden.unsqueeze(0))[0]]


@contextlib.contextmanager
def edit_residual(model: Any, layer: int, edit: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """While open, every forward pass replaces the residual stream after `layer` by `edit(residual)`."""

    def hook(_module: Any, _inputs: Any, output: Any) -> Any:
        return _replace(output, edit(_hidden(output)))

    handle = decoder_layers(model)[check_layer(model, layer)].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# A token whose residual norm exceeds this many times the median of its row's others is an attention sink
# ("massive activations", Sun et al. 2024). Measured on SmolLM2-135M: after layers 15 and 25, ordinary tokens
# stay within 1.4x the row median (120 corpus rows); the first tokens' sinks sit at 34-133x, and some
# documents have a secondary sink a few tokens in ("During Fashion Week _2023", "Storyboarding _is") at
# 16-19x; after layer 5, ordinary tokens reach 8x (99.9th percentile) to 10x (docs/microscope.md).
MASSIVE_NORM_RATIO = 8.0


def readable_positions(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """[batch, pos] bool: the real tokens SAEs here read, i.e. all but the attention sinks.

    A sink is the row's first token, and any other whose residual norm is massive (over MASSIVE_NORM_RATIO
    times the median norm of the row's other real tokens). SmolLM2 makes the first *two* tokens sinks
    when a text starts with an ordinary word ("tiny homes ..."), with norms about 150 times the rest: left
    in, those few vectors would outweigh all other tokens in an SAE's loss. With left padding the first
    real token is not at position 0, and the norm rule finds it.
    """
    norms = hidden.detach().float().norm(dim=-1)
    real = torch.ones_like(norms, dtype=torch.bool) if attention_mask is None else attention_mask.bool().clone()
    real[:, 0] = False
    reference = torch.where(real, norms, torch.full_like(norms, float("nan"))).nanmedian(dim=1).values
    return real & ~(norms > MASSIVE_NORM_RATIO * reference.unsqueeze(1))


def at_readable_positions(edit: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """`edit` applied at the readable positions only (never at an attention sink, which SAEs here never
    read); a generation step with one position is always edited."""

    def apply(hidden: torch.Tensor) -> torch.Tensor:
        if hidden.shape[1] == 1:
            return edit(hidden)
        keep = readable_positions(hidden).unsqueeze(-1)
        return torch.where(keep, edit(hidden), hidden)

    return apply


def unembed(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Logits for residual-stream vectors: the final norm, then the unembedding (the logit lens). The vectors are
    cast to the model's dtype (an fp32 SAE direction read through a bf16 model) and the logits returned in fp32."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    norm = getattr(getattr(inner, "model", inner), "norm", None)
    head = inner.get_output_embeddings()
    normed = norm(hidden) if norm is not None else hidden
    return head(normed.to(head.weight.dtype)).float()
