"""The logit lens: per layer, the tokens the residual stream would predict at a position if decoding stopped there.

Each layer's output goes through the model's final norm and unembedding (nostalgebraist 2020).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from pydantic import BaseModel

from audit_tools.residual import capture, n_layers, unembed
from audit_tools.text_features import tokenize


class LensLayer(BaseModel):
    """The top tokens one layer predicts."""

    layer: int
    tokens: list[tuple[str, float]]  # (token, probability)


class LogitLens(BaseModel):
    """The logit lens of a text at one position."""

    tokens: list[str]
    position: int
    layers: list[LensLayer]


@torch.no_grad()
def logit_lens(model: Any, tokenizer: Any, text: str, position: int = -1, top: int = 10) -> LogitLens:
    """Per layer, the `top` tokens predicted at `position` of `text`."""
    encoded = tokenize(tokenizer, text)
    length = encoded["input_ids"].shape[1]
    if not -length <= position < length:
        raise ValueError(f"position {position}: the text has {length} tokens (0 to {length - 1}, or -1 for the last)")
    if not 1 <= top <= 100:
        raise ValueError(f"top: expected 1 to 100, got {top}")
    with contextlib.ExitStack() as stack:
        seen = [stack.enter_context(capture(model, layer)) for layer in range(n_layers(model))]
        model(**encoded)
    layers = []
    for layer, captured in enumerate(seen):
        probs = unembed(model, captured.value[0, position].float().view(1, -1)).softmax(-1)[0]
        best = probs.topk(top)
        layers.append(LensLayer(layer=layer, tokens=[(tokenizer.decode([int(i)]), round(float(p), 4))
                                                     for p, i in zip(best.values, best.indices, strict=True)]))
    tokens = [tokenizer.decode([i]) for i in encoded["input_ids"][0].tolist()]
    return LogitLens(tokens=tokens, position=position % length, layers=layers)
