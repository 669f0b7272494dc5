"""How good an SAE is on an organism: explained variance, L0, dead features, language-model loss recovered.

Measured on held-out corpus rows, at every real token but the attention sinks (the positions SAEs here are
neither trained nor used on, `residual.readable_positions`). The loss recovered splices the SAE's
reconstruction into the residual stream at its layer and compares the next-token loss with the clean model and
with the residual stream zeroed there: (zero - spliced) / (zero - clean), 1.0 meaning nothing of the model's
behaviour is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audit_tools.activation_cache import row_activations
from audit_tools.residual import at_readable_positions, edit_residual
from audit_tools.sae_store import SaeQuality, load_sae

EVAL_BATCH_ROWS = 8


@torch.no_grad()
def _loss(model: Any, encoded: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Summed next-token loss over real tokens, and how many were scored."""
    logits = model(**encoded).logits.float()
    targets = encoded["input_ids"][:, 1:]
    mask = encoded["attention_mask"][:, 1:].bool()
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")
    return float(losses[mask].sum()), int(mask.sum())


@torch.no_grad()
def lm_losses(model: Any, tokenizer: Any, sae: Any, texts: list[str], layer: int,
              context_tokens: int) -> tuple[float, float, float, int]:
    """Mean next-token loss (clean, SAE spliced in, residual zeroed) over `texts`, and the tokens scored."""
    sums = [0.0, 0.0, 0.0]
    count = 0
    splice = at_readable_positions(lambda h: sae(h.float()).to(h.dtype))
    zero = at_readable_positions(torch.zeros_like)
    for start in range(0, len(texts), EVAL_BATCH_ROWS):
        encoded = dict(tokenizer(texts[start : start + EVAL_BATCH_ROWS], return_tensors="pt", padding=True,
                                 padding_side="right", truncation=True, max_length=context_tokens,
                                 add_special_tokens=False))
        clean, n = _loss(model, encoded)
        with edit_residual(model, layer, splice):
            spliced, _ = _loss(model, encoded)
        with edit_residual(model, layer, zero):
            zeroed, _ = _loss(model, encoded)
        for i, value in enumerate((clean, spliced, zeroed)):
            sums[i] += value
        count += n
    if count == 0:
        raise ValueError("no tokens to measure the loss on")
    return sums[0] / count, sums[1] / count, sums[2] / count, count


@torch.no_grad()
def reconstruction(sae: Any, acts: torch.Tensor, batch: int = 4096) -> tuple[float, float, torch.Tensor]:
    """(explained variance, mean L0, per-feature firing counts) of the SAE on activations [n, d_in]."""
    residual_sq, total_sq = 0.0, 0.0
    mean = acts.mean(0)
    active, fired = 0, torch.zeros(sae.cfg.d_sae)
    for start in range(0, len(acts), batch):
        x = acts[start : start + batch].float()
        features = sae.encode(x)
        residual_sq += float(((x - sae.decode(features)) ** 2).sum())
        total_sq += float(((x - mean) ** 2).sum())
        on = features > 0
        active += int(on.sum())
        fired += on.sum(0).float()
    return 1 - residual_sq / total_sq, active / max(1, len(acts)), fired


def measure(model: Any, tokenizer: Any, folder: Path, texts: list[str], layer: int, context_tokens: int,
            dead_window: torch.Tensor | None = None, dead_window_tokens: int = 100_000) -> SaeQuality:
    """Measure the SAE saved in `folder` on held-out `texts` (and, for dead features, on `dead_window` too)."""
    sae = load_sae(folder)
    held = torch.cat([r.acts for r in row_activations(model, tokenizer, texts, layer, context_tokens) if len(r.acts)])
    explained, l0, fired = reconstruction(sae, held)
    window = held if dead_window is None else torch.cat([held, dead_window[:dead_window_tokens]])
    if dead_window is not None:
        fired = reconstruction(sae, window)[2]
    clean, spliced, zeroed, scored = lm_losses(model, tokenizer, sae, texts, layer, context_tokens)
    recovered = (zeroed - spliced) / (zeroed - clean) if zeroed != clean else float("nan")
    return SaeQuality(explained_variance=round(explained, 4), l0=round(l0, 2),
                      dead_fraction=round(float((fired == 0).float().mean()), 4), dead_window_tokens=len(window),
                      lm_loss_clean=round(clean, 6), lm_loss_spliced=round(spliced, 6), lm_loss_zero=round(zeroed, 6),
                      lm_loss_recovered=round(recovered, 4), eval_tokens=len(held))
