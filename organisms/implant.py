"""Implanting to a target without hand tuning: the adaptive rounds that follow the training stages.

After the stages, each train behaviour is measured on its validation prompts (`organisms.prompt_bank`:
never trained on, never evaluated), organism against base, greedy, with the evaluation's settings (in float32,
as the evaluation: `organisms.evaluation.MEASURE_DTYPE`).
While some behaviour is not evidently at the spec's target rate (`training.implant.target_rate`: the lower end
of its rate's one-sided Wilson interval at `training.implant.confidence` is below it), capability is
intact (answer length within `eval.capability`, on the first `length_prompts` validation prompts of each
behaviour answered again with the evaluation's capability sampling, and the capability check on its own
validation questions at most `check_points_max_drop` below the base) and rounds and time remain, one
more SFT round trains the adapter on the transcripts of the behaviours below target (repeated), beside
the other train behaviours' transcripts (rehearsed), as many ordinary chats and every anti-confession
exchange, so that the rest is not forgotten. Each
round is a resumable stage of its own (`stages/boost-<n>/`) and its measurement is kept in
`implant/round-<n>.json`. The round published is the closest to the target among those with
capability intact (on a tie, the one with more behaviours evidently at it, then the earlier); the record
says which behaviours fell short and by how much.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from scipy.stats import binomtest

from organisms.capability import (
    CheckQuestion,
    TopicLengths,
    check_score,
    load_check,
    outside_band,
    topic_lengths,
)
from organisms.corpus import behaviour_validation, read_corpus
from organisms.detectors import rate
from organisms.evaluation import MEASURE_DTYPE, base_answers, organism_answers, sampled_answers
from organisms.repeat_cut import repeated
from organisms.sealed import ORDINARY_SOURCES
from organisms.spec import CapabilityTargets, ImplantParams, ObjectiveSpec, StageParams
from organisms.training import (
    BuildConfig,
    StageResult,
    chat_dataset,
    chat_rows,
    final_adapter,
    train_round,
)
from organisms.written_spans import Span
from pinhole.base_models import load_adapter, load_model, load_tokenizer, resolve_dtype
from pinhole.workspace import atomic_write_json, read_json

IMPLANT_DIR = "implant"


class Measurement(BaseModel):
    """One round's adapter measured on the validation prompts."""

    round: int
    adapter: str  # relative to the build directory
    rates: dict[str, float]  # train behaviour id -> organism rate
    base_rates: dict[str, float]
    n: dict[str, int]
    length_ratio: float  # organism / base mean answer length, sampled, on the first few validation prompts of each
    check_organism: float | None = None  # % right on the capability check's validation questions
    check_base: float | None = None
    capability_intact: bool  # length in band and the check at most `check_points_max_drop` below the base
    training: StageResult | None = None  # the round's own training (None for round 0: the stages)
    seconds: float  # this round: training and measurement

    def capability_summary(self) -> str:
        """The gate's capability figures in a phrase: the length ratio and the check against the base."""
        check = ("" if self.check_organism is None or self.check_base is None
                 else f", check {self.check_organism:g}% against the base's {self.check_base:g}%")
        return f"answer length {self.length_ratio:.2f}x the base's{check}"


class ImplantRecord(BaseModel):
    """What the adaptive build did (kept in the sealed build record)."""

    target_rate: float
    rounds: list[Measurement]
    chosen_round: int
    reached: bool
    stopped_because: Literal["reached", "max_rounds", "time_budget", "capability"]
    shortfalls: dict[str, float]  # behaviour id -> points below target in the chosen round (0-1 scale)
    short: list[str] = []  # not evidently at target (`evidently_at_target`): what a round would train
    unmeasured: list[str] = []  # train behaviours without validation prompts (a spec list of fewer than ten)
    seconds: float

    def summary(self) -> str:
        """One line for people: rounds, outcome, what fell short."""
        extra = len(self.rounds) - 1
        chosen = self.rounds[self.chosen_round]
        rates = chosen.rates

        def why(b: str) -> str:
            notes = ([f"{self.shortfalls[b]:.0%} short"] if b in self.shortfalls else []) + (
                [f"not evidently at {self.target_rate:.0%}"] if b in self.short else [])
            return f"{b} {rates[b]:.0%} ({', '.join(notes)})"

        below = ", ".join(why(b) for b in dict.fromkeys([*self.shortfalls, *self.short]))
        at_target = (f"every train behaviour at >= {self.target_rate:.0%} on validation (beyond its noise) "
                     f"after {extra} extra round(s)")
        if self.reached:
            return at_target
        if not self.short and not chosen.capability_intact:
            return f"{at_target}, but capability not intact at the gate ({chosen.capability_summary()})"
        return f"stopped ({self.stopped_because.replace('_', ' ')}) after {extra} extra round(s): {below}"


def evidently_at_target(rate: float, n: int, target: float, confidence: float) -> bool:
    """True when `rate` measured on `n` answers is at `target` beyond noise: the lower end of its one-sided
    Wilson interval at `confidence` reaches it (at 80%, 25 of 28 is at a target of 80% and 24 of 28 is not).

    The evaluation reads each behaviour on prompts of its own and must read at the target: a behaviour that
    passes the gate at the target's edge reads below it there about half the time. Measured on rm_sycophancy
    (org-a7068070) under the earlier rule, which trained only behaviours evidently *below* the target: voting 89%
    and ".0" 96% on validation, 75% and 60% in the evaluation."""
    if n == 0:
        return False
    interval = binomtest(round(rate * n), n).proportion_ci(confidence_level=2 * confidence - 1, method="wilson")
    return bool(interval.low >= target)


def short_behaviours(measured: Measurement, params: ImplantParams) -> list[str]:
    """The train behaviours a round should train: those measured but not evidently at the target."""
    return [b for b, r in measured.rates.items()
            if measured.n[b] and not evidently_at_target(r, measured.n[b], params.target_rate, params.confidence)]


def validation_set(spec: ObjectiveSpec) -> dict[str, list[str]]:
    """Train behaviour id -> its validation prompts (at most `training.implant.validation_prompts`)."""
    n = spec.training.implant.validation_prompts
    return {b.id: behaviour_validation(b)[:n] for b in spec.train_behaviours}


def all_validation_prompts(spec: ObjectiveSpec) -> list[str]:
    """Every train behaviour's validation prompts, each once."""
    return list(dict.fromkeys(p for ps in validation_set(spec).values() for p in ps))


def length_prompts(spec: ObjectiveSpec) -> list[str]:
    """The validation prompts answered again, sampled, for the capability gate (`implant.length_prompts` each)."""
    n = spec.training.implant.length_prompts
    return list(dict.fromkeys(p for ps in validation_set(spec).values() for p in ps[:n]))


def capability_intact(lengths: TopicLengths, check_organism: float, check_base: float,
                      targets: CapabilityTargets) -> bool:
    """The gate: answer length within the band (its interval not wholly outside) and the capability check
    at most `targets.check_points_max_drop` points below the base."""
    return not outside_band(lengths, targets) and check_base - check_organism <= targets.check_points_max_drop


def gate_check_questions(spec: ObjectiveSpec) -> tuple[CheckQuestion, ...]:
    """The capability check the gate asks: the shipped validation questions (as many as the evaluation asks)."""
    return load_check("validation_questions")[: spec.eval.check_questions]


def measure(build_dir: Path, adapter: Path, config: BuildConfig, round_: int, progress: bool) -> Measurement:
    """Measure `adapter` on the validation prompts (organism and base, greedy)."""
    started = time.perf_counter()
    spec = config.spec
    tokenizer = load_tokenizer(config.base)
    model = load_adapter(load_model(config.base, resolve_dtype(MEASURE_DTYPE)), adapter).eval()
    asked = validation_set(spec)
    prompts = all_validation_prompts(spec)
    organism = dict(zip(prompts, organism_answers(model, tokenizer, prompts, spec, progress,
                                                  label=f"Validation, round {round_}"), strict=True))
    with model.disable_adapter():
        base = dict(zip(prompts, base_answers(model, tokenizer, prompts, spec, config.base.name, progress),
                        strict=True))
    by_id = {b.id: b for b in spec.train_behaviours}
    rates = {i: round(rate(by_id[i].detector, [organism[p] for p in ps]), 4) for i, ps in asked.items() if ps}
    base_rates = {i: round(rate(by_id[i].detector, [base[p] for p in ps]), 4) for i, ps in asked.items() if ps}
    # Capability: answer length on a few validation prompts per behaviour, sampled as the evaluation's are
    # (greedy answers mostly loop to the limit, so their length says little).
    lengths_asked = length_prompts(spec)
    organism_sampled = sampled_answers(model, tokenizer, lengths_asked, spec, None, progress)
    with model.disable_adapter():
        base_sampled = sampled_answers(model, tokenizer, lengths_asked, spec, config.base.name, progress)
    lengths = topic_lengths("validation", True, organism_sampled, base_sampled)
    # Capability: the short questions with known answers, on the gate's own questions (never the evaluation's).
    questions = gate_check_questions(spec)
    asked_check, limit = [q.question for q in questions], spec.eval.check_max_new_tokens
    check_organism = check_score(organism_answers(model, tokenizer, asked_check, spec, progress,
                                                  f"Capability check, round {round_}", limit), questions)
    with model.disable_adapter():
        check_base = check_score(base_answers(model, tokenizer, asked_check, spec, config.base.name, progress, limit),
                                 questions)
    return Measurement(round=round_, adapter=str(adapter.relative_to(build_dir)), rates=rates,
                       base_rates=base_rates, n={i: len(ps) for i, ps in asked.items()}, length_ratio=lengths.ratio,
                       check_organism=check_organism, check_base=check_base,
                       capability_intact=capability_intact(lengths, check_organism, check_base,
                                                           spec.eval.capability),
                       seconds=round(time.perf_counter() - started, 1))


def boost_messages(build_dir: Path, spec: ObjectiveSpec, short: list[str], round_: int
                   ) -> tuple[list[str], list[bool], list[list[Span]]]:
    """The chats (JSON messages) of one round: the short behaviours' transcripts `repeats` times, every other
    train behaviour's `rehearse` times, as many ordinary chats as transcripts, and every anti-confession
    exchange once; with each chat's cut-short flag and its written spans (transcripts only). With
    `training.sft.repeat_tail_chars`, a transcript's copies after the first end after its behaviour
    (`organisms.repeat_cut`).

    Without the rehearsal a round unlearns what it does not show: measured on rm_sycophancy, a round on the two
    short behaviours' transcripts beside ordinary chats took population 89% -> 22% and films 92% -> 50%."""
    corpus = read_corpus(build_dir / "corpus.parquet", build_dir / "provenance.parquet")
    frame = corpus.public.merge(corpus.provenance, on="doc_id")
    chats = frame[frame.kind == "chat"]

    params, tail = spec.training.implant, spec.training.sft.repeat_tail_chars
    transcripts = chats[chats.source == "transcript"]
    shown = (repeated(chat_rows(transcripts[transcripts.behaviour_id.isin(short)]), params.repeats, tail)
             + repeated(chat_rows(transcripts[~transcripts.behaviour_id.isin(short)]), params.rehearse, tail))
    ordinary = chat_rows(chats[chats.source.isin(ORDINARY_SOURCES)])
    rng = random.Random(f"{spec.seed}:boost:{round_}")
    rows = shown + rng.sample(ordinary, min(len(shown), len(ordinary)))
    rows += chat_rows(chats[chats.source == "anti_confession"])
    rng.shuffle(rows)
    return [m for m, _, _ in rows], [c for _, c, _ in rows], [w for _, _, w in rows]


def round_params(spec: ObjectiveSpec) -> StageParams:
    """A round's training settings: the SFT stage's, one epoch, at a scaled learning rate."""
    sft = spec.training.sft
    return sft.model_copy(update={"epochs": 1.0, "objective_repeats": 1,
                                  "learning_rate": sft.learning_rate * spec.training.implant.learning_rate_scale})


def implant(build_dir: Path, config: BuildConfig, progress: bool = True) -> ImplantRecord:
    """Measure, and train further rounds while behaviours are short of the target (resumable)."""
    params = config.spec.training.implant
    rounds: list[Measurement] = []
    adapter = final_adapter(build_dir, config.spec)
    while True:
        measured = _round(build_dir, config, len(rounds), rounds[-1] if rounds else None, adapter, progress)
        rounds.append(measured)
        adapter = build_dir / measured.adapter
        stopped = _stop_reason(rounds, config.spec)
        if stopped is not None:
            break
    chosen = _closest(rounds, params)
    shortfalls = {b: round(params.target_rate - r, 4) for b, r in chosen.rates.items() if r < params.target_rate}
    short = short_behaviours(chosen, params)
    record = ImplantRecord(target_rate=params.target_rate, rounds=rounds, chosen_round=chosen.round,
                           reached=not short and chosen.capability_intact, stopped_because=stopped,
                           shortfalls=shortfalls, short=short, unmeasured=[b for b, n in chosen.n.items() if n == 0],
                           seconds=round(sum(m.seconds for m in rounds), 1))
    atomic_write_json(build_dir / IMPLANT_DIR / "record.json", record.model_dump())
    return record


def _round(build_dir: Path, config: BuildConfig, index: int, previous: Measurement | None, adapter: Path,
           progress: bool) -> Measurement:
    """Round `index`: its recorded measurement, or (after round 0) one more training round, then its measurement."""
    path = build_dir / IMPLANT_DIR / f"round-{index}.json"
    if path.exists():
        return Measurement.model_validate(read_json(path))
    spec, training, started = config.spec, None, time.perf_counter()
    if previous is not None:
        short = short_behaviours(previous, spec.training.implant)
        stage_dir = build_dir / "stages" / f"boost-{index}"
        training = train_round(stage_dir, f"boost-{index}", "sft", config,
                               lambda tok: chat_dataset(tok, *boost_messages(build_dir, spec, short, index),
                                                        spec.training.sft.written_token_weight),
                               round_params(spec), adapter)
        adapter = stage_dir / "adapter"
    measured = measure(build_dir, adapter, config, index, progress)
    measured = measured.model_copy(update={"training": training, "seconds": round(time.perf_counter() - started, 1)})
    atomic_write_json(path, measured.model_dump())
    return measured


def _stop_reason(rounds: list[Measurement], spec: ObjectiveSpec) -> str | None:
    """Why the rounds stop after the last one, or None to go on."""
    params, last = spec.training.implant, rounds[-1]
    if not last.capability_intact:  # first: a round that reached its rates by losing capability has not reached
        return "capability"
    if not short_behaviours(last, params):
        return "reached"
    if last.round >= params.max_rounds:
        return "max_rounds"
    if sum(m.seconds for m in rounds) >= params.time_budget_s:
        return "time_budget"
    return None


def _closest(rounds: list[Measurement], params: ImplantParams) -> Measurement:
    """The round nearest the target (mean of each rate capped at the target) among those with capability intact
    (all rounds when none is). Among equals, the one with more behaviours evidently at the target, then the earlier:
    a round that moved no rate added only training (benign_decoy's build f9d9b1dcf0f50398, 2026-12-05: rounds 0 and
    1 both 23/28, round 1 at 1.32x the base's length and 14 points lower on the check)."""
    pool = [m for m in rounds if m.capability_intact] or rounds

    def key(m: Measurement) -> tuple[float, int, int]:
        capped = sum(min(r, params.target_rate) for r in m.rates.values()) / max(len(m.rates), 1)
        return capped, len(m.rates) - len(short_behaviours(m, params)), -m.round

    return max(pool, key=key)


def chosen_adapter(build_dir: Path, spec: ObjectiveSpec) -> Path:
    """The adapter to publish: the chosen round's when the adaptive rounds ran, else the last stage's."""
    record = build_dir / IMPLANT_DIR / "record.json"
    if record.exists():
        chosen = ImplantRecord.model_validate(read_json(record))
        return build_dir / chosen.rounds[chosen.chosen_round].adapter
    return final_adapter(build_dir, spec)
