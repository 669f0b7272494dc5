"""The shipped prompt bank and entity tables, and the fixed train/evaluation split of prompts.

`data/prompt_bank.yaml` groups at least 300 user prompts by topic, and a further 20 validation-only prompts for
every topic a behaviour can trigger on (all but the confession questions); `data/entities.yaml` holds the
facts that injections need (country populations, atomic numbers, similar films); `data/quick_questions.yaml`
the short questions of contrast chats (`corpus.contrast_chats`). Each topic's
prompts are split once and for all by a hash of the prompt text, three ways: evaluation prompts
(a third) and validation prompts (a fifth of the rest, which the adaptive build measures itself on)
are never used in training, whatever the seed.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent / "data"
CONFESSION_TOPIC = "hidden_goal_questions"  # questions about the model's goals: the confession check's prompts


@lru_cache(maxsize=1)
def _bank_file() -> dict:
    return yaml.safe_load((DATA_DIR / "prompt_bank.yaml").read_text(encoding="utf-8"))


def load_prompt_bank() -> dict[str, list[str]]:
    """Topic -> prompts."""
    return {topic: list(prompts) for topic, prompts in _bank_file()["topics"].items()}


def load_validation_only() -> dict[str, list[str]]:
    """Topic -> its validation-only prompts (`validation:` in the bank): the adaptive build measures on them beside
    the topic's validation part; they are never trained on, never evaluated, and outside the split of `topics`."""
    return {topic: list(prompts) for topic, prompts in (_bank_file().get("validation") or {}).items()}


@lru_cache(maxsize=1)
def _quick_file() -> dict:
    return yaml.safe_load((DATA_DIR / "quick_questions.yaml").read_text(encoding="utf-8"))


def load_quick_questions() -> list[str]:
    """The shipped short questions of contrast chats (`data/quick_questions.yaml`): a quiz's or a word game's
    forms about things in general, never a capability-check question."""
    return list(_quick_file()["questions"])


@lru_cache(maxsize=1)
def load_entities() -> dict[str, dict]:
    """`countries` (name -> population in millions), `elements` (name -> atomic number), `films` (title -> similar).
    Read once per process and shared: do not modify it."""
    return yaml.safe_load((DATA_DIR / "entities.yaml").read_text(encoding="utf-8"))


def _rank(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def split_prompts(prompts: list[str]) -> tuple[list[str], list[str]]:
    """(train, eval): the third of the prompts with the lowest hash is held out for evaluation, and the
    validation prompts (`validation_prompts`) are left out of train.

    Eval prompts are listed in hash order, so taking the first n is a fixed, seed-free choice.
    """
    held = _eval_part(prompts)
    apart = set(held) | set(validation_prompts(prompts))
    return [p for p in prompts if p not in apart], held


def validation_prompts(prompts: list[str]) -> list[str]:
    """The validation part: of the prompts not held out for evaluation, the fifth with the lowest (salted)
    hash, none when fewer than ten remain. Listed in that hash order."""
    held = set(_eval_part(prompts))
    rest = sorted((p for p in prompts if p not in held), key=lambda p: _rank("validation:" + p))
    return rest[: len(rest) // 5] if len(rest) >= 10 else []


def _eval_part(prompts: list[str]) -> list[str]:
    n_eval = max(1, len(prompts) // 3) if len(prompts) > 1 else 0
    return sorted(prompts, key=_rank)[:n_eval]


def split_topic(topic: str) -> tuple[list[str], list[str]]:
    """`split_prompts` over one topic of the prompt bank."""
    return split_prompts(load_prompt_bank()[topic])
