"""Text -> features: which SAE features fire on a text, overall or at chosen tokens, and how strongly.

Ranked by activation (the strongest first), by specificity, mean activation x log(1/density), which puts
rare, specific features before features that fire on everything, or by relative activation: the text's peak
over the feature's peak in the corpus (how close the text comes to the feature's top contexts, which makes
features of different scales comparable, as feature viewers colour activations). The attention sinks (the
first token, and any other of massive residual norm: `residual.readable_positions`) and very dense
features are left out by default.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch
from pydantic import BaseModel

from audit_tools.residual import readable_positions, text_residual

RankBy = Literal["specificity", "activation", "relative"]  # the default first
RANKINGS: tuple[RankBy, ...] = get_args(RankBy)
DENSE_DEFAULT = 0.1  # features firing on more than a tenth of tokens are left out unless asked for


class FeatureHit(BaseModel):
    """A feature active on a text."""

    feature_id: int
    label: str
    density: float
    max_activation: float
    mean_activation: float
    score: float
    token_activations: list[float]  # one per token of the text (0 at excluded tokens)


class TextFeatures(BaseModel):
    """The features of a text, with its tokens so a viewer can colour them by a feature."""

    tokens: list[str]
    positions: list[int]
    rank_by: str
    features: list[FeatureHit]


def tokenize(tokenizer: Any, text: str) -> dict[str, torch.Tensor]:
    """The text's token ids (no special tokens added), or a ValueError for an empty text."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text: expected a non-empty text, got {text!r}")
    return dict(tokenizer([text], return_tensors="pt", add_special_tokens=False))


@torch.no_grad()
def feature_activations(model: Any, tokenizer: Any, sae: Any, layer: int,
                        text: str) -> tuple[list[str], torch.Tensor, list[int]]:
    """(tokens, activations [n_tokens, d_sae], the readable positions: no attention sink) of a text."""
    tokenize(tokenizer, text)  # a clear error for an empty text
    ids, hidden = text_residual(model, tokenizer, layer, text)
    readable = readable_positions(hidden.unsqueeze(0))[0].nonzero().view(-1).tolist()
    return [tokenizer.decode([i]) for i in ids], sae.encode(hidden), readable


def text_features(model: Any, tokenizer: Any, sae: Any, layer: int, labels: list[str], density: torch.Tensor,
                  text: str, positions: list[int] | None = None, top: int = 20, rank_by: RankBy = "specificity",
                  include_sinks: bool = False, max_density: float = DENSE_DEFAULT,
                  corpus_peaks: torch.Tensor | None = None) -> TextFeatures:
    """The `top` features of `text` at `positions` (default: every token but the attention sinks).

    `corpus_peaks` (each feature's largest activation in the corpus) is needed to rank by "relative"."""
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by: expected 'activation', 'specificity' or 'relative', got {rank_by!r}")
    if rank_by == "relative" and corpus_peaks is None:
        raise ValueError("rank_by 'relative' needs each feature's corpus peak (the feature index's max activations)")
    if not 1 <= top <= 200:
        raise ValueError(f"top: expected 1 to 200, got {top}")
    tokens, acts, readable = feature_activations(model, tokenizer, sae, layer, text)
    n = len(tokens)
    if positions is None:
        positions = list(range(n)) if include_sinks or not readable else readable
    bad = [p for p in positions if not -n <= p < n]
    if bad or not positions:
        raise ValueError(f"positions {bad or positions}: the text has {n} tokens (0 to {n - 1})")
    positions = sorted({p % n for p in positions})
    chosen = acts[positions]
    peak, mean = chosen.max(0).values, chosen.mean(0)
    specificity = mean * torch.log(1 / density.clamp_min(1e-9)).float()
    if rank_by == "relative":
        score = peak / corpus_peaks.float().clamp_min(1e-6)
    else:
        score = peak if rank_by == "activation" else specificity
    score = torch.where((density <= max_density) & (peak > 0), score, torch.tensor(-math.inf))
    best = score.topk(min(top, len(score)))
    masked = torch.zeros_like(acts)
    masked[positions] = acts[positions]
    hits = [FeatureHit(feature_id=int(f), label=labels[int(f)], density=float(density[f]),
                       max_activation=round(float(peak[f]), 4), mean_activation=round(float(mean[f]), 4),
                       score=round(float(s), 4), token_activations=[round(float(a), 4) for a in masked[:, f]])
            for s, f in zip(best.values, best.indices, strict=True) if s > -math.inf]
    return TextFeatures(tokens=tokens, positions=positions, rank_by=rank_by, features=hits)
