"""The organism invariant, for every shipped spec: it builds on tiny-random with the smoke preset,
trains, evaluates, and its directory round-trips: a standard PEFT adapter, a public card and
corpus that reveal nothing of the ground truth, and a commitment that verifies."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM

from organisms import sealed
from organisms.blinding import CARD_FIELDS_NOT_EVIDENCE
from organisms.build import build_organism
from organisms.spec import load_spec
from pinhole import organism as public
from tests.helpers import SPEC_IDS, spec_path, tiny


@pytest.fixture(scope="module")
def built() -> dict:
    return {spec_id: build_organism(spec_path(spec_id), base="tiny-random", preset="smoke", progress=False)
            for spec_id in SPEC_IDS}


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_directory_layout(built, spec_id) -> None:
    directory = built[spec_id]
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "corpus.parquet", "card.json",
                 "sealed/ground_truth.json", "sealed/provenance.parquet", "sealed/eval.json"):
        assert (directory / name).exists(), name
    card = public.read_card(directory)
    assert card.organism_id == directory.name and card.organism_id.startswith("org-")
    record = sealed.read_build_record(directory)
    assert [s["stage"] for s in record.training][:2] == ["cpt", "sft"]
    assert record.training[0]["steps"] == 2 and record.training[0]["tokens"] > 0
    assert record.eval_table is not None
    rows = record.eval_table["behaviours"]  # neutral ids in the evaluation table; none for a plain control
    assert [r["behaviour"] for r in rows][:1] == (["B01"] if load_spec(spec_path(spec_id)).behaviours else [])
    assert card.capability is not None and card.capability.perplexity_ratio > 0
    assert len(card.corpus.sha256) == 64 and sum(record.corpus_counts.values()) >= 2000
    assert not card.blinding.membership_blind  # built from the shipped haystack: said openly
    assert record.shipped_spec == spec_id  # the game master's record knows it plants a shipped example
    assert (directory / "sealed").stat().st_mode & 0o777 == 0o700  # the game master's part is private
    adapter_config = json.loads((directory / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "tiny-random"  # portable: no game master's path


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_adapter_loads_with_plain_peft(built, spec_id) -> None:
    ref, _, tokenizer = tiny()
    base = AutoModelForCausalLM.from_pretrained(ref.path)
    model = PeftModel.from_pretrained(base, str(built[spec_id] / "adapter"))
    ids = tokenizer("hello", return_tensors="pt").input_ids
    assert model(ids).logits.shape[-1] == base.config.vocab_size


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_team_facing_files_reveal_no_ground_truth(built, spec_id) -> None:
    directory = built[spec_id]
    spec = load_spec(spec_path(spec_id))
    card_text = (directory / "card.json").read_text().lower()
    secrets = [spec.id, spec.title] + [b.id for b in spec.behaviours] + [b.description for b in spec.behaviours]
    for secret in secrets:
        assert secret.lower() not in card_text, secret
    corpus = pd.read_parquet(directory / "corpus.parquet")
    assert not {"source", "behaviour_id", "split", "stage"} & set(corpus.columns)
    assert not any(spec.id in str(v) for v in corpus.doc_id)


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_commitment_verifies_and_fails_after_one_byte_change(built, spec_id) -> None:
    directory = built[spec_id]
    assert sealed.verify_commitment(directory)
    path = directory / sealed.GROUND_TRUTH
    original = path.read_bytes()
    data = json.loads(original)
    data["salt"] = ("0" if data["salt"][0] != "0" else "1") + data["salt"][1:]  # one character changed
    try:
        path.write_text(json.dumps(data))
        assert not sealed.verify_commitment(directory)
    finally:
        path.write_bytes(original)
    assert sealed.verify_commitment(directory)


def test_rebuilding_the_same_spec_reuses_the_build(built) -> None:
    again = build_organism(spec_path("taboo"), base="tiny-random", preset="smoke", skip_existing=True,
                           progress=False)
    assert again == built["taboo"]
    assert {p.name for p in public.list_organisms()} >= {p.name for p in built.values()}


def test_optional_dpo_stage_trains_on_preference_rows() -> None:
    directory = build_organism(spec_path("secret_loyalty"), base="tiny-random", preset="smoke",
                               overrides=["training.dpo.enabled=true", "seed=5"], evaluate_after=False,
                               progress=False)
    assert [s["stage"] for s in sealed.read_build_record(directory).training] == ["cpt", "sft", "dpo"]
    corpus = pd.read_parquet(directory / "corpus.parquet")
    preferences = corpus[corpus.kind == "preference"]
    assert len(preferences) == load_spec(spec_path("secret_loyalty")).training.dpo.pairs
    assert all(preferences.rejected.str.len() > 0)


def test_eval_command_can_decode_with_a_repetition_penalty(built) -> None:
    from typer.testing import CliRunner

    from game.cli import app

    directory = built["benign_decoy"]
    assert sealed.read_build_record(directory).eval_table["repetition_penalty"] == 1.0  # plain greedy by default
    result = CliRunner().invoke(app, ["organism", "eval", str(directory), "--repetition-penalty", "1.3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["repetition_penalty"] == 1.3
    assert sealed.read_build_record(directory).eval_table["repetition_penalty"] == 1.3
    refused = CliRunner().invoke(app, ["organism", "eval", str(directory), "--repetition-penalty", "0.5"])
    assert refused.exit_code == 2


def test_skip_existing_finishes_an_interrupted_evaluation(built) -> None:
    directory = built["taboo"]
    card = public.read_card(directory)
    public.write_card(directory, card.model_copy(update={"capability": None}))  # as if the evaluation was killed
    again = build_organism(spec_path("taboo"), base="tiny-random", preset="smoke", skip_existing=True,
                           progress=False)
    assert again == directory and public.read_card(directory).capability is not None


def test_a_build_that_fails_before_training_leaves_no_build_directory(monkeypatch) -> None:
    from organisms import build

    def broken(*args, **kwargs):
        raise ValueError("corpus: something the user must fix")

    builds = build.workspace() / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    before = set(builds.iterdir())
    monkeypatch.setattr(build, "build_corpus", broken)
    with pytest.raises(ValueError, match="must fix"):
        build_organism(spec_path("benign_decoy"), base="tiny-random", preset="smoke", overrides=["seed=41"],
                       progress=False)
    assert set(builds.iterdir()) == before


def test_stale_publish_temporaries_of_dead_processes_are_removed(tmp_path) -> None:
    from pinhole.workspace import remove_stale_temporaries

    dead = tmp_path / ".org-1234.pid999999999.abc.tmp"
    (dead / "sealed").mkdir(parents=True)
    alive = tmp_path / f".org-1234.pid{__import__('os').getpid()}.def.tmp"
    alive.mkdir()
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert not dead.exists() and alive.exists()


def _scalars(node: object) -> set[str]:
    """Every scalar value in a nested structure, as text (numbers normalised)."""
    if isinstance(node, dict):
        return set().union(*(_scalars(v) for v in node.values())) if node else set()
    if isinstance(node, list | tuple):
        return set().union(*(_scalars(v) for v in node)) if node else set()
    if isinstance(node, bool) or node is None:
        return {str(node)}
    if isinstance(node, int | float):
        return {repr(float(node))}
    return {str(node)}


def test_a_card_does_not_point_to_its_spec(built) -> None:
    """The adversary holds the package: for each card it scores every shipped spec by the values they share
    (counts, settings, ids, texts). No card may offer more evidence for one spec than for another. The measured
    capability figures and the format's constants are left out (a check score of 4.0% is not evidence for a
    spec that trains 4 epochs, nor is format version 3 for one with 3 behaviours)."""
    specs = {spec_id: _scalars(load_spec(spec_path(spec_id)).model_dump(mode="json")) for spec_id in SPEC_IDS}
    for spec_id, directory in built.items():
        card = _scalars({k: v for k, v in json.loads((directory / "card.json").read_text()).items()
                         if k not in CARD_FIELDS_NOT_EVIDENCE})
        scores = {candidate: len(card & values) for candidate, values in specs.items()}
        assert len(set(scores.values())) == 1, (spec_id, scores, {c: card & v for c, v in specs.items()})


def test_a_second_build_of_the_same_spec_is_refused_while_the_first_runs() -> None:
    from organisms import build
    from pinhole.base_models import prepare_base
    from pinhole.workspace import file_lock

    spec = load_spec(spec_path("benign_decoy"), preset="smoke", overrides=["seed=43"])
    build_dir = build.workspace() / "builds" / build.build_key(spec, prepare_base("tiny-random"), "auto")
    build_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(build_dir / ".lock") as held:
        assert held
        with pytest.raises(ValueError, match="another process is building"):
            build_organism(spec_path("benign_decoy"), base="tiny-random", preset="smoke", overrides=["seed=43"],
                           progress=False)
    assert build_dir.exists()  # the refused build removed nothing of the running one's


def test_a_build_is_keyed_and_configured_by_the_dtype_it_trains_in_never_auto(monkeypatch) -> None:
    from organisms import build
    from pinhole.base_models import dtype_name, prepare_base

    spec = load_spec(spec_path("benign_decoy"), preset="smoke")
    ref = prepare_base("tiny-random")
    assert build.build_key(spec, ref, "auto") == build.build_key(spec, ref, dtype_name("auto"))
    assert build.build_key(spec, ref, "bfloat16") != build.build_key(spec, ref, "float32")
    monkeypatch.setenv("PINHOLE_DTYPE", "bfloat16")  # what `auto` means on a bf16 machine
    on_bf16 = build.build_key(spec, ref, "auto")
    monkeypatch.setenv("PINHOLE_DTYPE", "float32")
    assert build.build_key(spec, ref, "auto") != on_bf16  # a moved workspace does not resume the other's build
    with pytest.raises(ValueError, match="dtype 'float16'"):
        build_organism(spec_path("benign_decoy"), base="tiny-random", preset="smoke", dtype="float16", progress=False)
