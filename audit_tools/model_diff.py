"""Model diffing: what the fine-tuning changed, read through the organism's SAE and through the unembedding.

- `feature_diff`: the features whose mean activation on the same texts changes most between organism
  and base (the base's residual stream encoded by the organism's SAE).
- `diff_lens`: the activation-difference lens after Minder et al. (ICLR 2026): the mean difference of
  the residual stream, organism minus base, over the first tokens of ordinary text, read through the
  final norm and unembedding (which tokens it promotes), matched to the nearest SAE features by
  decoder cosine, and returned as a vector to steer the base with (`steering.steer(vector=...)`).

Ordinary text by default: `data/diff_texts.txt`, about nothing an organism is trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from audit_tools.feature_pages import FeatureIndex, NearFeature
from audit_tools.residual import readable_positions, text_residual, unembed

DIFF_TEXTS = Path(__file__).parent / "data" / "diff_texts.txt"


def diff_texts() -> list[str]:
    """The shipped ordinary texts (one per line; # comments skipped)."""
    return [line.strip() for line in DIFF_TEXTS.read_text().splitlines() if line.strip() and not line.startswith("#")]


class DiffFeature(BaseModel):
    """A feature whose mean activation differs between organism and base."""

    feature_id: int
    label: str
    organism_mean: float
    base_mean: float
    difference: float


class FeatureDiff(BaseModel):
    """Features ranked by organism minus base mean activation."""

    n_texts: int
    n_tokens: int
    features: list[DiffFeature]


class PositionLens(BaseModel):
    """The lens at one of the first readable positions alone (Minder et al. read each position apart)."""

    position: int  # 0: the first readable token of each text
    n_texts: int
    norm: float
    promoted: list[tuple[str, float]]
    nearest_features: list[NearFeature]


class DiffLens(BaseModel):
    """The activation-difference lens: the mean residual difference and what it reads as, overall and per
    position."""

    layer: int
    n_texts: int
    first_tokens: int
    norm: float
    mean_residual_norm: float
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    nearest_features: list[NearFeature]
    by_position: list[PositionLens] = []
    vector: list[float]


def _check_texts(texts: list[str] | None) -> list[str]:
    texts = diff_texts() if texts is None else texts
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise ValueError("texts: expected a non-empty list of non-empty texts")
    return texts


@torch.no_grad()
def _paired_residuals(target: Any, layer: int, texts: list[str],
                      first_tokens: int | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per text, (organism, base) residuals after `layer` at the same positions: the first `first_tokens`
    (all with None) that are readable on both (no attention sink, whose massive norm would swamp a mean)."""
    runs = []
    for model in ("organism", "base"):
        with target.use(model) as module:
            runs.append([text_residual(module, target.tokenizer, layer, text)[1] for text in texts])
    organism, base = [], []
    for mine, theirs in zip(*runs, strict=True):
        keep = (readable_positions(mine.unsqueeze(0)) & readable_positions(theirs.unsqueeze(0)))[0]
        positions = keep.nonzero().view(-1)[:first_tokens]
        organism.append(mine[positions])
        base.append(theirs[positions])
    return organism, base


def feature_diff(target: Any, sae: Any, layer: int, index: FeatureIndex, texts: list[str] | None = None,
                 top: int = 20) -> FeatureDiff:
    """Features ranked by how much more they fire on the organism than on the base, on the same texts."""
    texts = _check_texts(texts)
    organism, base = (torch.cat(side) for side in _paired_residuals(target, layer, texts, None))
    with torch.no_grad():
        organism_mean, base_mean = sae.encode(organism).mean(0), sae.encode(base).mean(0)
    difference = organism_mean - base_mean
    best = difference.topk(min(top, len(difference)))
    return FeatureDiff(n_texts=len(texts), n_tokens=len(organism), features=[
        DiffFeature(feature_id=int(f), label=index.labels[int(f)], organism_mean=round(float(organism_mean[f]), 4),
                    base_mean=round(float(base_mean[f]), 4), difference=round(float(d), 4))
        for d, f in zip(best.values, best.indices, strict=True)])


def diff_lens(target: Any, layer: int, index: FeatureIndex | None, texts: list[str] | None = None,
              first_tokens: int = 5, top: int = 20) -> DiffLens:
    """The mean organism-minus-base residual difference over the first tokens of ordinary text, read out."""
    texts = _check_texts(texts)
    if first_tokens < 1:
        raise ValueError(f"first_tokens: expected at least 1, got {first_tokens}")
    per_text = _paired_residuals(target, layer, texts, first_tokens)
    organism, base = (torch.cat(side) for side in per_text)
    vector = (organism - base).mean(0)
    reference = float(base.norm(dim=1).mean())
    decode = target.tokenizer.decode

    def read(direction: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), target.use("base") as module:
            # read the direction at the scale of a typical residual vector, so the final norm sees a usual input
            scale = reference / max(float(direction.norm()), 1e-9)
            return unembed(module, (direction * scale).view(1, -1))[0]

    def tokens(values: torch.Tensor, ids: torch.Tensor, sign: float = 1.0) -> list[tuple[str, float]]:
        return [(decode([int(i)]), round(float(sign * v), 3)) for v, i in zip(values, ids, strict=True)]

    logits = read(vector)
    up, down = logits.topk(top), (-logits).topk(top)
    by_position = []
    for j in range(first_tokens):
        pairs = [(o[j], b[j]) for o, b in zip(*per_text, strict=True) if len(o) > j]
        if not pairs:
            break
        delta = torch.stack([o - b for o, b in pairs]).mean(0)
        best = read(delta).topk(min(top, 10))
        by_position.append(PositionLens(position=j, n_texts=len(pairs), norm=round(float(delta.norm()), 4),
                                        promoted=tokens(best.values, best.indices),
                                        nearest_features=index.nearest_to(delta, 5) if index is not None else []))
    return DiffLens(
        layer=layer, n_texts=len(texts), first_tokens=first_tokens, norm=round(float(vector.norm()), 4),
        mean_residual_norm=round(reference, 4), promoted=tokens(up.values, up.indices),
        suppressed=tokens(down.values, down.indices, -1.0),
        nearest_features=index.nearest_to(vector, top) if index is not None else [],
        by_position=by_position, vector=[round(float(x), 6) for x in vector])
