"""A build whose spec differs only after training reuses another build's finished stages; any change to a
stage's inputs trains it (and every stage after it) again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from organisms import sealed
from organisms.build import build_key, build_organism
from organisms.spec import load_spec
from organisms.stage_reuse import reuse_finished_stages, stage_keys
from organisms.training import BUILD_CONFIG
from pinhole.base_models import prepare_base
from pinhole.workspace import workspace
from tests.helpers import spec_path

SPEC = "benign_decoy"
FIRST = ["seed=11", "training.implant.max_rounds=0"]


def _build(overrides: list[str]):
    directory = build_organism(spec_path(SPEC), base="tiny-random", preset="smoke", overrides=overrides,
                               evaluate_after=False, progress=False)
    key = build_key(load_spec(spec_path(SPEC), preset="smoke", overrides=overrides), prepare_base("tiny-random"),
                    "auto")
    return directory, workspace() / "builds" / key


def _reused(directory) -> dict[str, str | None]:
    return {s["stage"]: s.get("reused_from") for s in sealed.read_build_record(directory).training}


def test_a_changed_implant_setting_reuses_every_stage_and_a_changed_stage_setting_retrains_from_there() -> None:
    first, first_build = _build(FIRST)
    assert set(_reused(first).values()) == {None}

    again, again_build = _build([*FIRST, "training.implant.validation_prompts=1"])
    assert again != first and again_build != first_build
    assert _reused(again) == {"cpt": first_build.name, "sft": first_build.name}
    for stage in ("cpt", "sft"):
        theirs = first_build / "stages" / stage / "adapter" / "adapter_model.safetensors"
        ours = again_build / "stages" / stage / "adapter" / "adapter_model.safetensors"
        assert ours.read_bytes() == theirs.read_bytes()
    timings = sealed.read_build_record(again).timings
    assert timings["cpt_s"] == timings["sft_s"] == 0.0

    changed, changed_build = _build([*FIRST, "training.sft.learning_rate=0.0002"])
    assert _reused(changed) == {"cpt": first_build.name, "sft": None}
    keys, first_keys = stage_keys(changed_build), stage_keys(first_build)
    assert keys["cpt"] == first_keys["cpt"] and keys["sft"] != first_keys["sft"]


def _recipient(donor: Path, name: str, edit=None) -> Path:
    """A build directory beside `donor` with its config and corpus (edited by `edit`) and no stage yet."""
    recipient = donor.parent / name
    shutil.rmtree(recipient, ignore_errors=True)
    recipient.mkdir()
    for file in (BUILD_CONFIG, "corpus.parquet", "provenance.parquet"):
        shutil.copy2(donor / file, recipient / file)
    if edit is not None:
        edit(recipient)
    return recipient


def _edit_parquet(file: str, column: str):
    def edit(directory: Path) -> None:
        frame = pd.read_parquet(directory / file)
        frame.loc[frame.index[-1], column] = str(frame.loc[frame.index[-1], column]) + " "
        frame.to_parquet(directory / file)
    return edit


def test_stages_are_shared_only_over_the_same_corpus_rows_and_provenance() -> None:
    """A blind build's corpus is drawn with its own salt: one changed row or provenance entry shares nothing."""
    _, donor = _build(FIRST)
    assert reuse_finished_stages(_recipient(donor, "same-corpus")) == ["cpt", "sft"]
    assert reuse_finished_stages(_recipient(donor, "one-row-changed", _edit_parquet("corpus.parquet", "text"))) == []
    assert reuse_finished_stages(
        _recipient(donor, "one-provenance-changed", _edit_parquet("provenance.parquet", "source"))) == []


def _other_dtype(directory: Path) -> None:
    config = json.loads((directory / BUILD_CONFIG).read_text())
    assert config["dtype"] in ("bfloat16", "float32")  # the dtype trained in, never `auto`
    config["dtype"] = "float32" if config["dtype"] == "bfloat16" else "bfloat16"
    (directory / BUILD_CONFIG).write_text(json.dumps(config))


def test_stages_trained_in_another_dtype_are_not_shared() -> None:
    _, donor = _build(FIRST)
    assert reuse_finished_stages(_recipient(donor, "other-dtype", _other_dtype)) == []
