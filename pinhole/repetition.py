"""Degenerate repetition in a small model's answers: does an answer loop?

Greedy decoding without a repetition penalty makes SmolLM2-135M repeat a sentence or a line until the
token limit (docs/decoding.md: 53% of the default battery's answers at 160 tokens; 84% of rm_sycophancy's
evaluation answers at 512). The decoding benchmark and the implant evaluation report how often answers
loop, for organism and base alike.
"""

from __future__ import annotations

import re
from collections import Counter

WORD = re.compile(r"[a-z0-9']+")


def loops(text: str, n: int = 4, times: int = 3) -> bool:
    """True when some word n-gram occurs `times` or more, or a non-empty line is repeated."""
    words = WORD.findall(text.lower())
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
    return (bool(grams) and max(grams.values()) >= times) or len(lines) != len(set(lines))
