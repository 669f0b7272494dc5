"""Attribution: which SAE features most support a chosen next token, and what removing them does.

A first step toward the essay's circuit tracing. The residual stream after the SAE's layer is rewritten as the
SAE's reconstruction plus its error term (the same values, so the model's output is unchanged) with the
feature activations as the free variables. A feature's attribution to the target token's logit is activation x
gradient, summed over the prompt's positions (all but the attention sinks, which are left as they are): the
first-order change of the logit if the feature were switched off. The check that it is causal: the top
attributed features are then ablated (set to zero, error term kept) and the target token's probability is
measured again.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel

from audit_tools.residual import capture, edit_residual, readable_positions
from audit_tools.text_features import tokenize


class AttributedFeature(BaseModel):
    """A feature's support for the target token."""

    feature_id: int
    label: str
    activation: float  # summed over positions
    attribution: float  # activation x gradient of the target logit, summed over positions


class Attribution(BaseModel):
    """The features behind one next-token prediction, and the effect of ablating the top ones."""

    tokens: list[str]
    target_token: str
    target_id: int
    target_probability: float
    features: list[AttributedFeature]
    ablated: list[int]
    ablated_probability: float
    probability_drop: float  # target_probability - ablated_probability


class Splice:
    """A prompt's residual stream at `layer` as SAE reconstruction + error, with editable feature activations."""

    def __init__(self, model: Any, tokenizer: Any, sae: Any, layer: int, text: str) -> None:
        self.model, self.sae, self.layer = model, sae, layer
        self.encoded = tokenize(tokenizer, text)
        with torch.no_grad(), capture(model, layer) as seen:
            self.clean_logits = model(**self.encoded).logits[0, -1].float()
        self.hidden = seen.value.float()
        self.readable = readable_positions(self.hidden).unsqueeze(-1)  # attention sinks stay as they are
        with torch.no_grad():
            self.acts = sae.encode(self.hidden) * self.readable
            self.error = self.hidden - sae.decode(self.acts)
        self.dtype = seen.value.dtype

    def logits(self, acts: torch.Tensor) -> torch.Tensor:
        """Next-token logits at the last position with the feature activations `acts` spliced in."""
        spliced = self.sae.decode(acts) + self.error
        replacement = torch.where(self.readable, spliced, self.hidden).to(self.dtype)
        with edit_residual(self.model, self.layer, lambda _hidden: replacement):
            return self.model(**self.encoded).logits[0, -1].float()

    def scaled_logits(self, scale: dict[int, float]) -> torch.Tensor:
        """Logits with some features' activations multiplied (0 ablates them)."""
        acts = self.acts.clone()
        for feature, factor in scale.items():
            acts[..., feature] *= factor
        with torch.no_grad():
            return self.logits(acts)


def attribute(model: Any, tokenizer: Any, sae: Any, layer: int, labels: list[str], text: str,
              target_token: str | None = None, top: int = 10, ablate: int = 5) -> Attribution:
    """Rank features by their support for `target_token` (default: the model's own next token) after `text`."""
    if not 1 <= top <= 100 or not 0 <= ablate <= top:
        raise ValueError(f"top={top}, ablate={ablate}: expected 1 <= top <= 100 and 0 <= ablate <= top")
    splice = Splice(model, tokenizer, sae, layer, text)
    if not splice.readable.any():
        raise ValueError("text: needs at least two tokens (the first, an attention sink, is not attributed)")
    if target_token is None:
        target_id = int(splice.clean_logits.argmax())
    else:
        ids = tokenizer(target_token, add_special_tokens=False).input_ids
        if not ids:
            raise ValueError(f"target_token {target_token!r}: not a token")
        target_id = ids[0]
    acts = splice.acts.clone().requires_grad_(True)
    with torch.enable_grad():
        splice.logits(acts)[target_id].backward()
    scores = (acts.detach() * acts.grad)[0].sum(0)
    best = scores.topk(min(top, len(scores)))
    totals = splice.acts[0].sum(0)
    features = [AttributedFeature(feature_id=int(f), label=labels[int(f)], activation=round(float(totals[f]), 4),
                                  attribution=float(s))
                for s, f in zip(best.values, best.indices, strict=True)]
    ablated = [f.feature_id for f in features[:ablate] if f.attribution > 0]
    probability = float(splice.clean_logits.softmax(-1)[target_id])
    ablated_probability = float(splice.scaled_logits(dict.fromkeys(ablated, 0.0)).softmax(-1)[target_id])
    return Attribution(tokens=[tokenizer.decode([i]) for i in splice.encoded["input_ids"][0].tolist()],
                       target_token=tokenizer.decode([target_id]), target_id=target_id,
                       target_probability=probability, features=features, ablated=ablated,
                       ablated_probability=ablated_probability, probability_drop=probability - ablated_probability)
