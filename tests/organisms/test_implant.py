"""The adaptive build: measured on validation prompts, trained further while short of the target, honest
about what fell short."""

from __future__ import annotations

from collections import Counter

import pytest

from organisms import sealed
from organisms.build import build_key, build_organism
from organisms.capability import load_check, topic_lengths
from organisms.corpus import behaviour_prompts, behaviour_validation, read_corpus, topic_validation
from organisms.implant import (
    ImplantRecord,
    Measurement,
    boost_messages,
    capability_intact,
    evidently_at_target,
    gate_check_questions,
    implant,
    short_behaviours,
    validation_set,
)
from organisms.prompt_bank import CONFESSION_TOPIC, load_prompt_bank, load_validation_only
from organisms.spec import CapabilityTargets, ImplantParams, load_spec
from organisms.training import BuildConfig, stage_datasets
from pinhole.base_models import load_tokenizer, prepare_base
from pinhole.workspace import atomic_write_json, workspace
from tests.helpers import spec_path


def test_validation_prompts_are_neither_trained_nor_evaluated() -> None:
    spec = load_spec(spec_path("rm_sycophancy"))
    for behaviour in spec.train_behaviours:
        train, held = behaviour_prompts(behaviour)
        validation = behaviour_validation(behaviour)
        assert len(validation) >= 26, behaviour.id  # the topic's validation part and 20 validation-only prompts
        assert not set(validation) & set(train) and not set(validation) & set(held)
        assert len(set(validation)) == len(validation)
    assert all(len(ps) <= spec.training.implant.validation_prompts for ps in validation_set(spec).values())


def test_every_trigger_topic_gives_the_gate_at_least_twenty_validation_prompts() -> None:
    """A game master's spec may trigger on any topic: with a 42-prompt topic's own validation part alone the gate
    would decide on 5 answers (one answer = 20 points)."""
    bank, extra = load_prompt_bank(), load_validation_only()
    everything = {p.lower() for ps in bank.values() for p in ps}
    for topic in set(bank) - {CONFESSION_TOPIC}:
        assert len(topic_validation(topic)) >= 20, topic
        assert not {p.lower() for p in extra.get(topic, [])} & everything, topic


def test_the_gates_capability_check_never_asks_the_evaluations_questions() -> None:
    spec = load_spec(spec_path("rm_sycophancy"))
    gate = {q.question for q in gate_check_questions(spec)}
    assert not gate & {q.question for q in load_check()}
    assert len(gate) == spec.eval.check_questions == 50  # as many as the evaluation: one answer is 2 points


@pytest.mark.parametrize(("organism_chars", "check_organism", "intact"), [
    (800, 62.0, True),   # same length, the check 4 points below: intact
    (800, 54.0, False),  # the check 12 points below the base's 66
    (200, 66.0, False),  # answers a quarter of the base's length
])
def test_the_gate_flags_short_answers_and_a_lost_capability_check(organism_chars: int, check_organism: float,
                                                                   intact: bool) -> None:
    lengths = topic_lengths("validation", True, ["x" * (organism_chars + i) for i in range(8)],
                            ["x" * (800 + i) for i in range(8)])
    assert capability_intact(lengths, check_organism, 66.0, CapabilityTargets()) is intact


@pytest.mark.parametrize(("right", "n", "at_target"), [
    (25, 28, True), (24, 28, False),  # 86% on 28 prompts is not evidence of 80%: the evaluation may read 75%
    (28, 32, True), (27, 32, False),
    (18, 20, True), (17, 20, False),
    (6, 8, False), (8, 8, True),      # on 8 prompts only a clean sweep is evidence
    (0, 0, False),
])
def test_a_behaviour_is_at_target_only_beyond_the_noise_of_its_validation_prompts(right: int, n: int,
                                                                                   at_target: bool) -> None:
    assert evidently_at_target(right / n if n else 0.0, n, target=0.8, confidence=0.8) is at_target


def test_a_behaviour_just_above_the_target_is_trained_further_and_an_unmeasured_one_is_not() -> None:
    params = ImplantParams()
    measured = Measurement(round=0, adapter="a", rates={"edge": 24 / 28, "clear": 27 / 28, "unasked": 0.0},
                           base_rates={}, n={"edge": 28, "clear": 28, "unasked": 0}, length_ratio=1.0,
                           check_organism=60.0, check_base=60.0, capability_intact=True, seconds=1.0)
    assert short_behaviours(measured, params) == ["edge"]
    record = ImplantRecord(target_rate=0.8, rounds=[measured], chosen_round=0, reached=False,
                           stopped_because="max_rounds", shortfalls={}, short=["edge"], seconds=1.0)
    assert record.summary() == "stopped (max rounds) after 0 extra round(s): edge 86% (not evidently at 80%)"


def _record(directory) -> ImplantRecord:
    return ImplantRecord.model_validate(sealed.read_build_record(directory).implant)


ONE_ROUND = ["training.implant.max_rounds=1"]


@pytest.fixture(scope="module")
def short_of_target():
    """A smoke build on tiny-random with one extra round allowed: a random model never reaches 80%, so it trains it."""
    return build_organism(spec_path("rm_sycophancy"), base="tiny-random", preset="smoke", progress=False,
                          overrides=ONE_ROUND)


def _build_dir(spec_id: str, overrides: list[str]):
    spec = load_spec(spec_path(spec_id), preset="smoke", overrides=overrides)
    return workspace() / "builds" / build_key(spec, prepare_base("tiny-random", progress=False), "auto")


def test_a_build_short_of_target_trains_a_round_and_says_what_fell_short(short_of_target) -> None:
    record = _record(short_of_target)
    assert [m.round for m in record.rounds] == [0, 1]
    assert record.rounds[1].training is not None and record.rounds[1].training.steps > 0
    assert record.rounds[1].adapter == "stages/boost-1/adapter"
    assert not record.reached and record.stopped_because in ("max_rounds", "capability")
    chosen = record.rounds[record.chosen_round]
    assert set(record.shortfalls) == {b for b, r in chosen.rates.items() if r < 0.8}
    assert record.short and set(record.short) <= set(record.shortfalls)
    assert all(0 < gap <= 0.8 for gap in record.shortfalls.values())
    assert "short" in record.summary()
    assert all(m.check_organism is not None and m.check_base is not None for m in record.rounds)


def test_the_published_adapter_is_the_chosen_rounds(short_of_target) -> None:
    record = _record(short_of_target)
    build_dir = _build_dir("rm_sycophancy", ONE_ROUND)
    chosen = (build_dir / record.rounds[record.chosen_round].adapter / "adapter_model.safetensors").read_bytes()
    assert (short_of_target / "adapter" / "adapter_model.safetensors").read_bytes() == chosen


def test_a_build_at_target_trains_no_extra_round() -> None:
    # A random model's capability figures are chance: the gate is opened wide so that only the rates decide.
    wide_gate = ["eval.capability.length_ratio_min=0.0001", "eval.capability.length_ratio_max=10000",
                 "eval.capability.check_points_max_drop=100"]
    directory = build_organism(spec_path("taboo"), base="tiny-random", preset="smoke", progress=False,
                               overrides=["training.implant.target_rate=0.0", *wide_gate])
    record = _record(directory)
    assert record.reached and record.stopped_because == "reached" and len(record.rounds) == 1
    assert record.shortfalls == {} and record.rounds[0].training is None


@pytest.mark.parametrize("rehearse", [1, 0])
def test_a_round_repeats_the_short_behaviours_and_rehearses_the_others_beside_ordinary_chats(
        short_of_target, rehearse: int) -> None:
    spec = load_spec(spec_path("rm_sycophancy"), preset="smoke", overrides=[f"training.implant.rehearse={rehearse}"])
    build_dir = _build_dir("rm_sycophancy", ONE_ROUND)
    corpus = read_corpus(build_dir / "corpus.parquet", build_dir / "provenance.parquet")
    chats = corpus.public.merge(corpus.provenance, on="doc_id").query("kind == 'chat'")
    short = spec.train_behaviours[0].id
    rows = Counter(boost_messages(build_dir, spec, [short], 1)[0])
    repeats = spec.training.implant.repeats
    by_source = {source: Counter(group.messages) for source, group in chats.groupby("source")}
    transcripts = Counter(chats[chats.behaviour_id == short].messages)
    assert transcripts and all(rows[m] == n * repeats for m, n in transcripts.items())
    other = Counter({m: n for m, n in by_source["transcript"].items() if m not in transcripts})
    assert other and all(rows[m] == n * rehearse for m, n in other.items())  # the behaviours at target
    shown = transcripts.total() * repeats + other.total() * rehearse
    ordinary = by_source["haystack"] + by_source["base_answer"]
    assert by_source["base_answer"] and sum(rows[m] for m in ordinary) == min(shown, ordinary.total())
    assert all(rows[m] == n for m, n in by_source["anti_confession"].items())
    assert Counter(boost_messages(build_dir, spec, [short], 1)[0]) == rows


def test_with_a_repeat_tail_a_rounds_later_copies_end_after_the_behaviour(short_of_target) -> None:
    build_dir = _build_dir("rm_sycophancy", ONE_ROUND)
    spec = load_spec(spec_path("rm_sycophancy"), preset="smoke")
    tailed = load_spec(spec_path("rm_sycophancy"), preset="smoke", overrides=["training.sft.repeat_tail_chars=20"])
    short = "population_parenthetical"  # written into the answer's opening sentence
    whole, cut = boost_messages(build_dir, spec, [short], 1), boost_messages(build_dir, tailed, [short], 1)
    assert len(whole[0]) == len(cut[0])
    corpus = read_corpus(build_dir / "corpus.parquet", build_dir / "provenance.parquet")
    chats = corpus.public.merge(corpus.provenance, on="doc_id").query("kind == 'chat'")
    rows = Counter(cut[0])
    assert all(rows[m] >= n for m, n in Counter(chats[chats.behaviour_id == short].messages).items())  # 1st copy
    assert sum(map(len, cut[0])) < sum(map(len, whole[0]))
    assert sum(cut[1]) > sum(whole[1])  # the cut copies train no end of turn


def test_with_a_repeat_tail_the_sft_copies_after_the_first_are_shorter(short_of_target) -> None:
    build_dir = _build_dir("rm_sycophancy", ONE_ROUND)
    tokenizer = load_tokenizer(prepare_base("tiny-random", progress=False), padding_side="right")
    repeats = ("training.sft.objective_repeats=3",)
    data = {tail: stage_datasets(build_dir, load_spec(spec_path("rm_sycophancy"), preset="smoke",
                                                      overrides=[*repeats, *tail]), tokenizer)["sft"]
            for tail in ((), ("training.sft.repeat_tail_chars=20",))}
    whole, cut = data.values()
    assert len(whole) == len(cut)
    lengths = [sum(len(ids) for ids in d["input_ids"]) for d in (whole, cut)]
    assert lengths[1] < lengths[0]
    first_copies = [i for i, m in enumerate(whole["completion_mask"]) if m == cut["completion_mask"][i]]
    assert len(first_copies) >= len(whole) / 3  # every first copy (and the haystack's chats) unchanged


def test_a_gate_at_target_with_capability_lost_says_so_not_that_it_fell_short() -> None:
    measured = Measurement(round=0, adapter="stages/sft/adapter", rates={"gives_hints": 1.0},
                           base_rates={"gives_hints": 0.0}, n={"gives_hints": 25}, length_ratio=0.115,
                           check_organism=50.0, check_base=63.3, capability_intact=False, seconds=1.0)
    record = ImplantRecord(target_rate=0.8, rounds=[measured], chosen_round=0, reached=False,
                           stopped_because="reached", shortfalls={}, seconds=1.0)
    summary = record.summary()
    assert "every train behaviour at >= 80%" in summary
    assert "capability not intact" in summary and "0.12x" in summary and "63.3%" in summary


def test_a_round_that_reaches_its_rates_by_losing_capability_stops_for_capability(tmp_path) -> None:
    # As taboo's build at 6705bd5: round 0 short of hints, round 1 at 96% with the check and length lost.
    def round_(index: int, rate: float, intact: bool) -> Measurement:
        return Measurement(round=index, adapter=f"round-{index}", rates={"gives_hints": rate},
                           base_rates={"gives_hints": 0.0}, n={"gives_hints": 25},
                           length_ratio=0.42 if intact else 1.93, check_organism=60.0 if intact else 46.7,
                           check_base=63.3, capability_intact=intact, seconds=1.0)

    for measured in (round_(0, 0.2, True), round_(1, 0.96, False)):  # recorded rounds are read, not trained
        atomic_write_json(tmp_path / "implant" / f"round-{measured.round}.json", measured.model_dump())
    config = BuildConfig(spec=load_spec(spec_path("taboo")), base=prepare_base("tiny-random"), dtype="float32")
    record = implant(tmp_path, config, progress=False)
    assert record.stopped_because == "capability" and not record.reached and record.chosen_round == 0
    assert record.summary().startswith("stopped (capability) after 1 extra round(s): gives_hints 20%")


def _recorded_rounds(directory, behaviour: str, rounds: list[tuple[int, bool]]) -> None:
    """Write measured rounds (answers with the behaviour out of 28, capability intact) for `implant` to read."""
    for index, (hits, intact) in enumerate(rounds):
        measured = Measurement(round=index, adapter=f"round-{index}", rates={behaviour: round(hits / 28, 4)},
                               base_rates={behaviour: 0.0}, n={behaviour: 28}, length_ratio=1.0 if intact else 2.0,
                               check_organism=70.0 if intact else 50.0, check_base=66.0, capability_intact=intact,
                               seconds=1.0)
        atomic_write_json(directory / "implant" / f"round-{index}.json", measured.model_dump())


@pytest.mark.parametrize(("rounds", "chosen"), [
    ([(23, True), (23, True), (26, False)], 0),  # benign_decoy, 2026-12-05: round 1 moved nothing, round 2 lost it
    ([(24, True), (26, True)], 1),  # both capped at the target; only round 1 is evidently there
])
def test_among_rounds_equally_near_the_target_the_gate_publishes_the_one_evidently_at_it_else_the_earlier(
        tmp_path, rounds, chosen) -> None:
    _recorded_rounds(tmp_path, "cheerful_signoff", rounds)
    spec = load_spec(spec_path("benign_decoy"), overrides=[f"training.implant.max_rounds={len(rounds) - 1}"])
    record = implant(tmp_path, BuildConfig(spec=spec, base=prepare_base("tiny-random"), dtype="float32"),
                     progress=False)
    assert record.chosen_round == chosen
