"""The nucleus sampler draws exactly the tempered top-p distribution, row by row."""

from __future__ import annotations

import pytest
import torch

from pinhole.sampling import NucleusSampler


def _nucleus(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The reference distribution: sort, keep the smallest most-likely set with mass >= top_p, renormalise."""
    probs = torch.softmax(scores / temperature, dim=-1)
    ordered, index = probs.sort(descending=True)
    keep = (ordered.cumsum(-1) - ordered) < top_p
    target = torch.zeros_like(probs)
    target.scatter_(0, index[keep], ordered[keep])
    return target / target.sum()


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9), (1.3, 0.5), (0.5, 0.05)])
def test_draws_match_the_nucleus_distribution(temperature: float, top_p: float) -> None:
    scores = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0])
    sampler = NucleusSampler(temperature, top_p, torch.Generator().manual_seed(0))
    draws = sampler.draw(scores.repeat(40_000, 1))
    counts = torch.bincount(draws, minlength=len(scores)).float() / len(draws)
    expected = _nucleus(scores, temperature, top_p)
    assert torch.all(counts[expected == 0] == 0)  # never a token outside the nucleus
    assert torch.allclose(counts, expected, atol=0.01), (counts, expected)


def test_the_processor_leaves_only_the_drawn_token_and_is_seeded() -> None:
    scores = torch.randn(6, 50)
    first = NucleusSampler(0.8, 0.9, torch.Generator().manual_seed(3))(None, scores)
    again = NucleusSampler(0.8, 0.9, torch.Generator().manual_seed(3))(None, scores)
    assert torch.equal(first, again)
    assert torch.all(torch.isfinite(first).sum(-1) == 1)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="top_p"):
        NucleusSampler(0.7, 0.0, torch.Generator())
