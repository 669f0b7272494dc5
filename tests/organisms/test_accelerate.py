"""Training under `accelerate launch` with two CPU processes (the path to multi-GPU training)."""

from __future__ import annotations

from peft import PeftModel

from organisms.build import build_organism
from organisms.sealed import read_build_record
from tests.helpers import spec_path, tiny


def test_two_process_training_produces_a_loadable_adapter() -> None:
    directory = build_organism(spec_path("taboo"), base="tiny-random", preset="smoke", processes=2,
                               overrides=["seed=11"], evaluate_after=False, progress=False)
    training = read_build_record(directory).training
    assert [s["stage"] for s in training[:2]] == ["cpt", "sft"]
    assert all(s["steps"] == 2 for s in training[:2])
    ref, model, _ = tiny()
    PeftModel.from_pretrained(model, str(directory / "adapter"))
