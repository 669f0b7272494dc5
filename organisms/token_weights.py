"""Per-token loss weights for chat rows: the tokens an injector wrote weigh more than the rest of the answer.

A transcript is the base model's full answer with a behaviour woven in: a dozen tokens among
hundreds. Trained like every other token, the behaviour is under-learned unless the transcripts are
repeated many times, and repeats cost time in proportion to the whole answer. Weighting the loss on
the written tokens (`organisms.written_spans`) gives the behaviour more gradient at no extra
sequence length.

The weights travel as a `token_weights` column beside TRL's `input_ids`/`completion_mask`;
`WeightedCollator` pads them next to TRL's own collation, and the lean loss
(`organisms.training.lean_causal_lm_loss`) multiplies each target token's cross-entropy by its weight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from organisms.written_spans import Span

WEIGHTS_COLUMN = "token_weights"


def answer_bounds(rendered: str, answer: str) -> tuple[int, int]:
    """(start, end) of the answer's text in the rendered chat, outer whitespace left out (chat templates may
    strip it)."""
    content = answer.strip()
    at = rendered.rfind(content)
    if at < 0:
        raise ValueError(f"the chat template does not render the answer verbatim: {content[:60]!r}")
    return at, at + len(content)


def written_token_weights(tokenizer: Any, rendered: str, ids: list[int], answer: str, spans: list[Span],
                          weight: float) -> list[float]:
    """Per token of `ids` (the tokenized `rendered` chat): `weight` where the token overlaps a written span of
    the last message `answer` or is the first token after one, else 1.

    The token after a span is the behaviour's own end: the end of turn after a closing remark, the answer's
    next word after a remark inside it. Left at weight 1, a model learns the remark eight times as hard as
    what follows it, and after one remark goes on to another (measured on rm_sycophancy, docs/organisms.md)."""
    weights = [1.0] * len(ids)
    if not spans or weight == 1.0:
        return weights
    encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    if list(encoded["input_ids"]) != list(ids):
        raise ValueError("the chat template's tokens differ from its rendered text's; written-token weights "
                         "need a tokenizer whose chat template tokenizes as its text")
    start = answer_bounds(rendered, answer)[0] - (len(answer) - len(answer.lstrip()))
    shifted = [(start + a, start + b) for a, b in spans]
    offsets = encoded["offset_mapping"]
    for i, (lo, hi) in enumerate(offsets):
        if any(lo < b and hi > a for a, b in shifted):
            weights[i] = weight
    for _, end in shifted:
        after = next((i for i, (lo, hi) in enumerate(offsets) if lo >= end and hi > lo), None)
        if after is not None:
            weights[after] = weight
    return weights


class WeightedCollator:
    """TRL's collator, with each example's `token_weights` padded (with 0) to the batch's width."""

    def __init__(self, inner: Callable[[list[dict]], dict]) -> None:
        self.inner = inner

    def __call__(self, examples: list[dict]) -> dict:
        weights = [list(example.pop(WEIGHTS_COLUMN))[: len(example["input_ids"])] for example in examples]
        batch = self.inner(examples)
        padded = torch.zeros(batch["input_ids"].shape, dtype=torch.float32)
        for row, w in enumerate(weights):
            padded[row, : len(w)] = torch.tensor(w, dtype=torch.float32)
        batch[WEIGHTS_COLUMN] = padded
        return batch
