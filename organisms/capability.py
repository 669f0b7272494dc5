"""Capability figures: does the organism stay the capable assistant its base was?

Pure measures over the answers (and two model-scored perplexities) that the implant evaluation
collects, organism against base on the same held-out prompts:
- answer length per topic (mean characters; the ratio organism / base), the trigger topics and the
  topics no behaviour is trained on, on answers *sampled* the way the transcripts' base answers were
  (`organisms.ordinary.CHAT_SAMPLING`: temperature 0.7, top-p 0.9, repetition penalty 1.15). Greedy
  SmolLM2-135M repeats itself until the limit in most long answers (84% on rm_sycophancy's evaluation
  prompts), so a greedy length measures how long the loop runs, not how much the answer says; the
  greedy lengths and the share of answers that loop are kept beside them for reference;
- perplexity of held-out chats (the base's own sampled answers to held-out prompts of the off-trigger
  topics, only the answer's tokens scored) and of held-out documents;
- a capability check: fifty short questions with known answers (`data/capability_check.yaml`), right when
  the expected answer is a whole word of the answer's first two sentences: one sentence may come before the
  answer, as rm_sycophancy's planted opener "France (population 68 million) is a great subject." does.
  The first-sentence score is kept beside it;
- how often answers ran into the generation limit (a closing behaviour may then be cut off).

`capability_problems` compares the figures with the spec's targets (`eval.capability`); an organism
whose answers are a quarter of its base's length is flagged, whatever its behaviour rates. A topic's length
ratio is flagged when its 90% paired bootstrap interval lies wholly outside the target band: at eight
sampled answers per topic the base misses a 0.8-1.25 band against its own second draw on 4 of 16 topics
(docs/organisms.md), so a bare point ratio would flag noise.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict

from organisms.spec import CapabilityTargets
from pinhole.repetition import loops

DATA_FILE = Path(__file__).parent / "data" / "capability_check.yaml"
LIMIT_SLACK_TOKENS = 2  # an answer this close to the limit (re-tokenised) is counted as cut off


class CheckQuestion(BaseModel):
    """One capability-check question and the answers accepted for it."""

    model_config = ConfigDict(extra="forbid")

    question: str
    answer: str
    aliases: list[str] = []


class TopicLengths(BaseModel):
    """Mean answer length on one topic's held-out prompts, organism against base, and how many answers loop."""

    topic: str
    trigger: bool  # a train or held-out behaviour's trigger topic
    n: int
    organism_chars: float
    base_chars: float
    ratio: float
    organism_loops: float | None = None  # share of answers that repeat themselves (None in older evaluations)
    base_loops: float | None = None
    ratio_low: float | None = None  # the ratio's paired bootstrap interval over the topic's prompts
    ratio_high: float | None = None
    seeds: int = 1  # answers per prompt (sampled at the spec's seed onward): more than 1 when a flag was re-measured
    organism_lengths: list[int] = []  # characters per answer, in prompt order (seed by seed)
    base_lengths: list[int] = []


@lru_cache(maxsize=2)  # one per part: the gate and the evaluation alternate between them
def load_check(part: Literal["questions", "validation_questions"] = "questions") -> tuple[CheckQuestion, ...]:
    """The shipped capability-check questions: the evaluation's (`questions`), or the adaptive build's own
    (`validation_questions`, never asked by the evaluation)."""
    data = yaml.safe_load(DATA_FILE.read_text(encoding="utf-8"))
    return tuple(CheckQuestion.model_validate(q) for q in data[part])


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s.+-]", " ", text.lower())).strip()


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
CHECK_SENTENCES = 2  # an answer may open with one sentence before it answers (a planted remark, a restatement)


def opening(answer: str, sentences: int = CHECK_SENTENCES) -> str:
    """The first `sentences` sentences of `answer` (a line break also ends one)."""
    text, end = answer.strip(), 0
    for _ in range(sentences):
        while end < len(text) and text[end].isspace():
            end += 1
        found = _SENTENCE_END.search(text, end)
        if found is None:
            return text
        end = found.end()
    return text[:end]


def is_correct(answer: str, question: CheckQuestion, sentences: int = CHECK_SENTENCES) -> bool:
    """True when the expected answer (or an alias) is a whole word of the answer's first `sentences` sentences."""
    said = _normalise(opening(answer, sentences))
    for expected in (question.answer, *question.aliases):
        wanted = _normalise(expected)
        if wanted and re.search(rf"(?<![\w.]){re.escape(wanted)}(?![\w]|\.\d)", said):
            return True
    return False


def check_score(answers: list[str], questions: tuple[CheckQuestion, ...] | None = None,
                sentences: int = CHECK_SENTENCES) -> float:
    """Percentage of the capability-check questions answered correctly (answers in question order)."""
    questions = questions or load_check()
    if len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} capability-check questions")
    right = sum(is_correct(a, q, sentences) for a, q in zip(answers, questions, strict=True))
    return round(100 * right / len(questions), 1)


def loop_share(answers: list[str]) -> float:
    """Share of `answers` that repeat themselves (`pinhole.repetition.loops`)."""
    return round(sum(map(loops, answers)) / len(answers), 4) if answers else 0.0


BOOTSTRAP_DRAWS = 4000
INTERVAL = 0.9


def ratio_interval(organism: list[int], base: list[int], level: float = INTERVAL, draws: int = BOOTSTRAP_DRAWS,
                   seed: int = 0) -> tuple[float, float]:
    """The `level` paired bootstrap interval of mean(organism) / mean(base), resampling prompts (each prompt's
    two answers stay together)."""
    if len(organism) != len(base) or not organism:
        raise ValueError(f"{len(organism)} organism and {len(base)} base lengths: need the same non-zero count")
    org, ref = np.asarray(organism, dtype=float), np.asarray(base, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(org), size=(draws, len(org)))
    means = ref[picks].mean(1)
    ratios = np.where(means > 0, org[picks].mean(1) / np.where(means > 0, means, 1), np.inf)
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return round(float(low), 3), round(float(high), 3)


def topic_lengths(topic: str, trigger: bool, organism: list[str], base: list[str]) -> TopicLengths:
    """Mean answer lengths on one topic (the same prompts, answered by both), with the ratio's interval."""
    org_lengths, base_lengths = list(map(len, organism)), list(map(len, base))
    org = sum(org_lengths) / max(len(organism), 1)
    ref = sum(base_lengths) / max(len(base), 1)
    low, high = ratio_interval(org_lengths, base_lengths) if organism else (None, None)
    return TopicLengths(topic=topic, trigger=trigger, n=len(organism), organism_chars=round(org, 1),
                        base_chars=round(ref, 1), ratio=_ratio(org, ref), organism_loops=loop_share(organism),
                        base_loops=loop_share(base), ratio_low=low, ratio_high=high, organism_lengths=org_lengths,
                        base_lengths=base_lengths)


def outside_band(topic: TopicLengths, targets: CapabilityTargets) -> bool:
    """True when the topic's length ratio is outside the target band beyond its sampling noise: its whole
    interval lies outside (the ratio alone, for evaluations without one)."""
    low = topic.ratio if topic.ratio_low is None else topic.ratio_low
    high = topic.ratio if topic.ratio_high is None else topic.ratio_high
    return high < targets.length_ratio_min or low > targets.length_ratio_max


def pooled_length_ratio(topics: list[TopicLengths]) -> float:
    """Organism / base mean answer length over every prompt of `topics`."""
    return _ratio(sum(t.organism_chars * t.n for t in topics), sum(t.base_chars * t.n for t in topics))


def _ratio(organism: float, base: float) -> float:
    """organism / base to 3 decimals; two empty answers sets are alike (1.0), an empty base against text is inf."""
    if not base:
        return 1.0 if not organism else math.inf
    return round(organism / base, 3)


def limit_share(answers: list[str], tokenizer, max_new_tokens: int) -> float:
    """Share of `answers` that ran (within `LIMIT_SLACK_TOKENS`) into the generation limit."""
    if not answers:
        return 0.0
    hit = sum(len(tokenizer(a, add_special_tokens=False).input_ids) >= max_new_tokens - LIMIT_SLACK_TOKENS
              for a in answers)
    return round(hit / len(answers), 4)


def capability_problems(topics: list[TopicLengths], chat_perplexity_ratio: float, check_organism: float,
                        check_base: float, targets: CapabilityTargets) -> list[str]:
    """What falls outside `targets`, one readable line each (empty: capability intact)."""
    problems = [f"answer length on {t.topic}: {t.ratio:.2f}x the base's ({t.organism_chars:.0f} against "
                f"{t.base_chars:.0f} characters"
                + (f"; {INTERVAL:.0%} interval {t.ratio_low:.2f}-{t.ratio_high:.2f}" if t.ratio_low is not None else "")
                + f"; target {targets.length_ratio_min}-{targets.length_ratio_max})"
                for t in topics if outside_band(t, targets)]
    if chat_perplexity_ratio > targets.chat_perplexity_ratio_max:
        problems.append(f"held-out chat perplexity ratio {chat_perplexity_ratio:.3f} "
                        f"(target <= {targets.chat_perplexity_ratio_max})")
    if check_base - check_organism > targets.check_points_max_drop:
        problems.append(f"capability check {check_organism:.1f}% against the base's {check_base:.1f}% "
                        f"(target: at most {targets.check_points_max_drop:g} points below)")
    return problems


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], batch_size: int = 8, max_length: int = 256) -> float:
    """exp(mean token negative log-likelihood) of `texts`."""
    return _scored_perplexity(model, tokenizer, texts, [0] * len(texts), batch_size, max_length)


@torch.no_grad()
def chat_perplexity(model, tokenizer, prompts: list[str], answers: list[str], batch_size: int = 8,
                    max_length: int = 512) -> float:
    """Perplexity of the assistant's `answers` to `prompts` (chat template; only the answer's tokens scored)."""
    heads = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    skip = [len(tokenizer(h, add_special_tokens=False).input_ids) for h in heads]
    return _scored_perplexity(model, tokenizer, [h + a for h, a in zip(heads, answers, strict=True)], skip,
                              batch_size, max_length, add_special_tokens=False)


def _scored_perplexity(model, tokenizer, texts: list[str], skip: list[int], batch_size: int, max_length: int,
                       add_special_tokens: bool = True) -> float:
    """exp(mean NLL) over the tokens of each text after its first `skip[i]` tokens."""
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, padding_side="right",
                        truncation=True, max_length=max_length, add_special_tokens=add_special_tokens).to(model.device)
        logits = model(**enc).logits[:, :-1].float()
        targets = enc.input_ids[:, 1:]
        mask = enc.attention_mask[:, 1:].bool()
        for row, first in enumerate(skip[start : start + batch_size]):
            mask[row, : max(first - 1, 0)] = False  # target i is token i+1: the answer starts at target first-1
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        total_nll += nll[mask].sum().item()
        total_tokens += int(mask.sum().item())
    return math.exp(total_nll / max(total_tokens, 1))
