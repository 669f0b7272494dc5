"""Steering and ablation: generate with a feature's direction added, or the feature removed, beside the unsteered text.

- `add` with a feature: its decoder direction scaled to `strength` times the feature's maximum
  activation in the corpus (so strength 1 is the feature at its strongest) is added to the residual
  stream after the SAE's layer at every position but the first.
- `add` with a vector (e.g. the activation-difference lens): the vector, rescaled to `strength` times
  the mean residual norm of the prompt, is added the same way; `model="base"` steers the base.
- `ablate`: the feature's own contribution (its activation times its decoder direction) is
  subtracted wherever it fires.
Samples use the same seeds with and without steering, so the difference is the steering's.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
from pydantic import BaseModel

from audit_tools.residual import at_readable_positions, edit_residual, readable_residual
from audit_tools.target import Sampling
from pinhole.generation import generate

Mode = Literal["add", "ablate"]


class Steering(BaseModel):
    """Side-by-side samples with and without steering."""

    prompt: str
    feature_ids: list[int]
    mode: str
    strength: float
    layer: int
    model: str
    unsteered: list[str]
    steered: list[str]


def feature_edit(sae: Any, feature_ids: list[int], mode: Mode, strength: float, max_activations: list[float]) -> Any:
    """The residual edit that adds (or ablates) features: each added at `strength` x its max activation."""
    directions = sae.W_dec[feature_ids].detach().float()  # [n, d_model]
    if mode == "add":
        delta = (directions * torch.tensor(max_activations).view(-1, 1)).sum(0) * strength
        return at_readable_positions(lambda h: h + delta.to(h.dtype))
    if mode == "ablate":

        def ablate(h: torch.Tensor) -> torch.Tensor:
            acts = sae.encode(h.float())[..., feature_ids]  # [..., n]
            return h - (acts @ directions).to(h.dtype)

        return at_readable_positions(ablate)
    raise ValueError(f"mode: expected 'add' or 'ablate', got {mode!r}")


def vector_edit(vector: torch.Tensor, strength: float, reference_norm: float) -> Any:
    """The residual edit that adds a direction at `strength` times `reference_norm`."""
    delta = torch.nn.functional.normalize(vector.float().view(-1), dim=0) * strength * reference_norm
    return at_readable_positions(lambda h: h + delta.to(h.dtype))


def generate_with(target: Any, layer: int, texts: list[str], edit: Any | None, model: str = "organism",
                  sampling: Sampling | None = None) -> list[str]:
    """Continue raw `texts` with the residual `edit` at `layer` (None: unedited), in batches of the target's size."""
    sampling = sampling or Sampling()
    settings = dict(max_new_tokens=sampling.max_new_tokens, do_sample=not sampling.greedy,
                    temperature=sampling.temperature or 1.0, top_p=sampling.top_p,
                    repetition_penalty=sampling.repetition_penalty, seed=sampling.seed, batch_size=target.batch_size)
    with target.use(model) as module, (edit_residual(module, layer, edit) if edit else contextlib.nullcontext()):
        return generate(module, target.tokenizer, texts, **settings)


def steer(target: Any, layer: int, prompt: str, *, edit: Any, feature_ids: list[int], mode: str, strength: float,
          model: str = "organism", chat: bool = True, sampling: Sampling | None = None, n: int = 1) -> Steering:
    """Generate `n` samples of `prompt` with and without the residual `edit` at `layer`."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt: expected a non-empty text, got {prompt!r}")
    if not 1 <= n <= 16:
        raise ValueError(f"n: expected 1 to 16 samples, got {n}")
    text = target.render_chat([{"role": "user", "content": prompt}], add_generation_prompt=True) if chat else prompt
    unsteered, steered = (generate_with(target, layer, [text] * n, e, model, sampling) for e in (None, edit))
    return Steering(prompt=prompt, feature_ids=feature_ids, mode=mode, strength=strength, layer=layer, model=model,
                    unsteered=unsteered, steered=steered)


@torch.no_grad()
def mean_residual_norm(target: Any, layer: int, text: str, model: str = "organism") -> float:
    """The mean residual norm after `layer` over a text's readable tokens (no attention sink)."""
    with target.use(model) as module:
        hidden = readable_residual(module, target.tokenizer, layer, text)
    return float(hidden.norm(dim=1).mean()) if len(hidden) else 1.0
