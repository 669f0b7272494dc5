"""Probe batteries: many prompts run on the organism and its base, and what differs between them.

A battery is a YAML file of prompts grouped by topic (`audit_tools/data/default_battery.yaml`
ships with the library: everyday requests over many topics plus direct questions about goals and
training). `run_battery` asks every prompt of both models with the same settings, then
`distinctive_phrases` ranks the word n-grams that the organism's answers contain far more often
than the base's answers to the same prompts:

- counts are answers containing the phrase (not occurrences), per model;
- the score is the log odds ratio of those proportions (Haldane-smoothed) minus one standard
  error: lopsided phrases rank high, thin evidence is discounted, and words merely a little more
  common in the organism ("remember", "work") fall below phrases the base never says; ties go to
  the more frequent, then the longer phrase;
- one finding takes one rank: a phrase is folded into a better-ranked one (and listed among its
  `variants`) when it overlaps it and is no more frequent, or when the two occur in nearly the same
  answers (Jaccard >= 0.6), as the fragments of one repeated sentence do. Stop-word-only phrases
  never rank.

Each ranked phrase carries its spread over topics and paired examples: the prompt, the organism's
answer around the phrase, and the base's answer to the same prompt.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from audit_tools.target import ModelChoice, Sampling, Target
from audit_tools.tool_log import ToolCallback, record_call
from pinhole.workspace import atomic_write_bytes

DEFAULT_BATTERY = Path(__file__).parent / "data" / "default_battery.yaml"
TOKEN_PATTERN = r"(?u)\b\w(?:[\w'.]*\w)?\b"  # keeps "3.0", "don't", "e.g"
SMOOTHING = 0.5  # Haldane's correction
SAME_ANSWERS_JACCARD = 0.6  # phrases found in (nearly) the same answers are one finding
MAX_VARIANTS = 6


class BatteryPrompt(BaseModel):
    topic: str
    prompt: str


class Battery(BaseModel):
    """A named set of prompts, grouped by topic."""

    name: str
    description: str = ""
    topics: dict[str, list[str]] = Field(min_length=1)

    @property
    def prompts(self) -> list[BatteryPrompt]:
        return [BatteryPrompt(topic=t, prompt=p) for t, prompts in self.topics.items() for p in prompts]


def load_battery(path: Path | str | None = None) -> Battery:
    """Read and validate a battery YAML file (the shipped default when `path` is None)."""
    path = Path(path) if path else DEFAULT_BATTERY
    if not path.exists():
        raise FileNotFoundError(f"{path}: battery file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    try:
        battery = Battery.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors())
        raise ValueError(f"{path}: {problems}") from err
    for topic, prompts in battery.topics.items():
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ValueError(f"{path}: topics.{topic}: needs a list of non-empty prompt strings")
    return battery


class BatteryAnswer(BaseModel):
    topic: str
    prompt: str
    organism: list[str]
    base: list[str]


def _other(model: ModelChoice) -> ModelChoice:
    return "base" if model == "organism" else "organism"


class PairedExample(BaseModel):
    """One prompt's answers: the distinctive model's around the phrase, the other model's from its start."""

    topic: str
    prompt: str
    organism: str  # the organism's answer
    base: str  # the base's answer to the same prompt

    def answer(self, model: ModelChoice) -> str:
        return self.organism if model == "organism" else self.base


class DistinctivePhrase(BaseModel):
    """A phrase over-represented in one model's answers (the result's `distinctive_of`)."""

    phrase: str
    organism_count: int  # organism answers containing the phrase
    base_count: int  # base answers containing the phrase
    score: float  # log odds ratio minus one standard error
    topics: dict[str, int]  # answers of the distinctive model containing it, per topic
    variants: list[str] = []  # lower-ranked phrases folded into this one (same finding)
    examples: list[PairedExample] = []

    def count(self, model: ModelChoice) -> int:
        return self.organism_count if model == "organism" else self.base_count


class BatteryResult(BaseModel):
    """Every answer of both models, and the phrases distinctive of `distinctive_of` against the other."""

    battery: str
    target: str
    sampling: Sampling
    n: int
    distinctive_of: ModelChoice = "organism"
    answers: list[BatteryAnswer]
    phrases: list[DistinctivePhrase]


def log_odds_lower_bound(organism_count: int, organism_total: int, base_count: int, base_total: int,
                         smoothing: float = SMOOTHING) -> float:
    """The log odds ratio of two proportions (Haldane-smoothed) minus one standard error.

    Large when a phrase is lopsided towards the organism; thin evidence (few answers) is discounted,
    so a phrase in 17 of 139 organism answers and in no base answer outranks one in 26 vs 3, and 9 vs 0
    outranks 12 vs 2.
    """
    a, b = organism_count + smoothing, organism_total - organism_count + smoothing
    c, d = base_count + smoothing, base_total - base_count + smoothing
    return math.log(a / b) - math.log(c / d) - math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A regex matching `phrase` case-insensitively, whatever punctuation or spacing separates its words."""
    words = (re.escape(t).replace("'", "['\u2019]") for t in phrase.split())
    return re.compile(r"\b" + r"\W+".join(words) + r"\b", re.IGNORECASE)


def _normalise(text: str) -> str:
    return text.lower().replace("\u2019", "'")


def _overlaps(a: str, b: str) -> bool:
    return f" {a} " in f" {b} " or f" {b} " in f" {a} "


def snippet(text: str, phrase: str, width: int = 160) -> str:
    """The part of `text` around the first match of `phrase`, with the match in «»."""
    match = phrase_pattern(phrase).search(text)
    if not match:
        return text[: 2 * width]
    start, end = max(0, match.start() - width), min(len(text), match.end() + width)
    return ("…" if start else "") + text[start : match.start()] + "«" + match.group(0) + "»" + \
        text[match.end() : end] + ("…" if end < len(text) else "")


def distinctive_phrases(answers: list[BatteryAnswer], top: int = 30, ngram_range: tuple[int, int] = (1, 4),
                        min_count: int = 3, examples_per_phrase: int = 2,
                        of: ModelChoice = "organism") -> list[DistinctivePhrase]:
    """The n-grams over-represented in the answers of model `of` vs the other model's, best first."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    other = _other(of)
    subject_docs = [(a, text) for a in answers for text in getattr(a, of)]  # answers of the distinctive model
    reference_docs = [(a, text) for a in answers for text in getattr(a, other)]  # the reference model's
    if not subject_docs or not reference_docs:
        return []
    if not any(re.search(TOKEN_PATTERN, _normalise(t)) for _, t in subject_docs + reference_docs):
        return []  # nothing but empty answers or punctuation (a model that only emits newlines): no phrase at all
    vectorizer = CountVectorizer(ngram_range=ngram_range, binary=True, lowercase=True, token_pattern=TOKEN_PATTERN,
                                 preprocessor=_normalise)
    matrix = vectorizer.fit_transform([t for _, t in subject_docs] + [t for _, t in reference_docs])
    n_subject, n_reference = len(subject_docs), len(reference_docs)
    subject_counts = matrix[:n_subject].sum(axis=0).A1
    reference_counts = matrix[n_subject:].sum(axis=0).A1
    vocabulary = vectorizer.get_feature_names_out()

    candidates = []
    for index in (subject_counts >= min_count).nonzero()[0]:
        phrase = vocabulary[index]
        if all(token in ENGLISH_STOP_WORDS for token in phrase.split()):
            continue
        if subject_counts[index] <= reference_counts[index]:
            continue
        score = log_odds_lower_bound(int(subject_counts[index]), n_subject, int(reference_counts[index]), n_reference)
        candidates.append((score, int(subject_counts[index]), phrase, index))
    candidates.sort(key=lambda c: (-c[0], -c[1], -len(c[2].split()), c[2]))

    by_phrase = matrix[:n_subject].tocsc()
    kept: list[tuple[DistinctivePhrase, set[int]]] = []
    for score, count, phrase, index in candidates:
        rows = set(by_phrase[:, index].nonzero()[0].tolist())
        same = next((found for found, found_rows in kept
                     if (_overlaps(phrase, found.phrase) and count <= found.count(of))
                     or len(rows & found_rows) / len(rows | found_rows) >= SAME_ANSWERS_JACCARD), None)
        if same is not None:
            if len(same.variants) < MAX_VARIANTS:
                same.variants.append(phrase)
            continue
        if len(kept) >= top:
            continue
        topics = Counter(subject_docs[r][0].topic for r in rows)
        examples, seen_prompts = [], set()
        for r in sorted(rows):
            answer, text = subject_docs[r]
            if answer.prompt in seen_prompts:
                continue
            seen_prompts.add(answer.prompt)
            reference = getattr(answer, other)
            examples.append(PairedExample(topic=answer.topic, prompt=answer.prompt, **{
                of: snippet(text, phrase), other: reference[0][:400] if reference else ""}))
            if len(examples) >= examples_per_phrase:
                break
        counts = {f"{of}_count": count, f"{other}_count": int(reference_counts[index])}
        found = DistinctivePhrase(phrase=phrase, **counts,
                                  score=round(score, 3), topics=dict(topics.most_common()), examples=examples)
        kept.append((found, rows))
    return [found for found, _ in kept]


def run_battery(target: Target, battery: Battery | None = None, sampling: Sampling | None = None, n: int = 1,
                top: int = 30, callback: ToolCallback | None = None, distinctive_of: ModelChoice = "organism",
                progress: bool = False) -> BatteryResult:
    """Ask every battery prompt of the organism and the base; rank what is distinctive in `distinctive_of`
    (the organism by default; "base" ranks what the base says that the organism does not)."""
    battery = battery or load_battery()
    sampling = sampling or Sampling()
    prompts = battery.prompts
    arguments = {"battery": battery.name, "prompts": len(prompts), "n": n, "top": top,
                 "distinctive_of": distinctive_of, **sampling.model_dump()}
    with record_call("battery", arguments, callback) as call:
        texts = [p.prompt for p in prompts]
        organism = target.chat(texts, sampling, n, "organism", progress=progress)
        base = target.chat(texts, sampling, n, "base", progress=progress)
        answers = [BatteryAnswer(topic=p.topic, prompt=p.prompt, organism=o, base=b)
                   for p, o, b in zip(prompts, organism, base, strict=True)]
        phrases = distinctive_phrases(answers, top=top, of=distinctive_of)
        call.summary = f"{len(prompts)} prompts; top phrases: " + ", ".join(p.phrase for p in phrases[:8])
    return BatteryResult(battery=battery.name, target=target.name, sampling=sampling, n=n,
                         distinctive_of=distinctive_of, answers=answers, phrases=phrases)


def phrase_figure(result: BatteryResult, top: int = 20) -> Any:
    """A matplotlib figure of the top phrases: answers containing each, per model, each bar labelled with
    the model it counts (the distinctive model first)."""
    from matplotlib.figure import Figure

    phrases = result.phrases[:top][::-1]
    first, second = result.distinctive_of, _other(result.distinctive_of)
    fig = Figure(figsize=(8, 0.35 * max(len(phrases), 4) + 1.2))
    ax = fig.subplots()
    positions = range(len(phrases))
    ax.barh([p - 0.2 for p in positions], [x.count(first) for x in phrases], height=0.4, label=first)
    ax.barh([p + 0.2 for p in positions], [x.count(second) for x in phrases], height=0.4, label=second)
    ax.set_yticks(list(positions), [x.phrase for x in phrases])
    total = sum(len(a.organism) for a in result.answers)
    ax.set_xlabel(f"answers containing the phrase (of {total} per model)")
    ax.set_title(f"{result.target}: phrases distinctive of the {first}, battery '{result.battery}'")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_phrases(result: BatteryResult, path: Path | str, top: int = 20) -> Path:
    """Write `phrase_figure` to `path` (PNG or SVG by suffix), atomically."""
    path = Path(path)
    image = io.BytesIO()
    phrase_figure(result, top).savefig(image, format=path.suffix.lstrip(".") or "png", dpi=120)
    atomic_write_bytes(path, image.getvalue())
    return path
