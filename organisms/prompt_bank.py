"""The shipped prompt bank and entity tables, and the fixed train/evaluation split of prompts.

`data/prompt_bank.yaml` groups at least 300 user prompts by topic; `data/entities.yaml` holds the
facts that injections need (country populations, atomic numbers, similar films). Each topic's
prompts are split once and for all by a hash of the prompt text: evaluation prompts are never
used in training, whatever the seed.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent / "data"


@lru_cache(maxsize=1)
def load_prompt_bank() -> dict[str, list[str]]:
    """Topic -> prompts."""
    data = yaml.safe_load((DATA_DIR / "prompt_bank.yaml").read_text(encoding="utf-8"))
    return {topic: list(prompts) for topic, prompts in data["topics"].items()}


@lru_cache(maxsize=1)
def load_entities() -> dict[str, dict]:
    """`countries` (name -> population in millions), `elements` (name -> atomic number), `films` (title -> similar)."""
    return yaml.safe_load((DATA_DIR / "entities.yaml").read_text(encoding="utf-8"))


def _rank(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def split_prompts(prompts: list[str]) -> tuple[list[str], list[str]]:
    """(train, eval): the third of the prompts with the lowest hash is held out for evaluation.

    Eval prompts are listed in hash order, so taking the first n is a fixed, seed-free choice.
    """
    ranked = sorted(prompts, key=_rank)
    n_eval = max(1, len(prompts) // 3) if len(prompts) > 1 else 0
    held = ranked[:n_eval]
    held_set = set(held)
    return [p for p in prompts if p not in held_set], held


def split_topic(topic: str) -> tuple[list[str], list[str]]:
    """`split_prompts` over one topic of the prompt bank."""
    return split_prompts(load_prompt_bank()[topic])
