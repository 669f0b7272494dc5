"""Temperature and nucleus (top-p) sampling without sorting the vocabulary.

Hugging Face's sampler sorts every row of logits for top-p and draws with `torch.multinomial`; on a
CPU with a 49k-token vocabulary those two take ~0.25 s per step for a batch of 64, more than a small
model's forward pass. `NucleusSampler` draws the same distribution with one cumulative sum and
rejection: draw a token from the whole (tempered) distribution by inverting its CDF, and accept it
when the probability mass strictly above it is below `top_p`, which is exactly membership in the
nucleus (the smallest set of most likely tokens whose mass reaches `top_p`). The nucleus holds at
least `top_p` of the mass, so a draw is accepted with probability at least `top_p`.

It is a logits processor applied last in greedy decoding: it leaves only the drawn token finite.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

SAMPLER_VERSION = "nucleus-rejection-1"  # part of the cache key of every answer drawn with it
_MAX_ROUNDS = 64


class NucleusSampler(LogitsProcessor):
    """Draw one token per row from softmax(scores / temperature) restricted to the top-p nucleus."""

    def __init__(self, temperature: float, top_p: float, generator: torch.Generator) -> None:
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"temperature {temperature} must be > 0 and top_p {top_p} in (0, 1]")
        self.temperature, self.top_p, self.generator = temperature, top_p, generator

    def draw(self, scores: torch.Tensor) -> torch.Tensor:
        """The drawn token id of every row of `scores` (batch, vocabulary)."""
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        chosen = torch.zeros(probs.shape[0], dtype=torch.long)
        pending = torch.arange(probs.shape[0])
        for _ in range(_MAX_ROUNDS):
            rows = probs if len(pending) == probs.shape[0] else probs[pending]
            cdf = rows.cumsum(dim=-1)
            u = torch.rand(len(pending), 1, generator=self.generator) * cdf[:, -1:]
            token = torch.searchsorted(cdf, u).clamp_max(rows.shape[1] - 1)
            p_token = rows.gather(1, token)
            above = (rows * (rows > p_token)).sum(dim=-1)
            accepted = above < self.top_p
            chosen[pending[accepted]] = token[accepted, 0]
            pending = pending[~accepted]
            if len(pending) == 0:
                return chosen
        chosen[pending] = probs[pending].argmax(dim=-1)  # never accepted in _MAX_ROUNDS: the likeliest token
        return chosen

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, self.draw(scores)[:, None], 0.0)
        return out
