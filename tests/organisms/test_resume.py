"""An interrupted training stage resumes from its latest checkpoint instead of starting again."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from organisms import training
from organisms.build import build_organism
from organisms.sealed import read_build_record
from tests.helpers import spec_path


class Interrupt(TrainerCallback):
    """Simulates a kill after a given step of the SFT stage (after its checkpoint is saved)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.at_step:
            raise KeyboardInterrupt(f"simulated interruption at step {state.global_step}")


def test_interrupted_stage_resumes_from_checkpoint(monkeypatch) -> None:
    overrides = ["training.sft.max_steps=4", "seed=7"]
    original = training.make_stage_trainer

    def interrupted_trainer(stage, *args, **kwargs):
        trainer = original(stage, *args, **kwargs)
        if stage == "sft":
            trainer.add_callback(Interrupt(at_step=2))
        return trainer

    monkeypatch.setattr(training, "make_stage_trainer", interrupted_trainer)
    with pytest.raises(KeyboardInterrupt, match="step 2"):
        build_organism(spec_path("benign_decoy"), base="tiny-random", preset="smoke", overrides=overrides,
                       progress=False)
    monkeypatch.setattr(training, "make_stage_trainer", original)
    directory = build_organism(spec_path("benign_decoy"), base="tiny-random", preset="smoke", overrides=overrides,
                               evaluate_after=False, progress=False)
    stages = {s["stage"]: s for s in read_build_record(directory).training}
    assert stages["cpt"]["resumed_from_step"] == 0  # finished before the interruption: not re-run
    assert stages["sft"]["resumed_from_step"] == 2
    assert stages["sft"]["steps"] == 4


def test_only_complete_checkpoints_are_resumed_from(tmp_path) -> None:
    import json

    complete = tmp_path / "checkpoint-2"
    complete.mkdir()
    (complete / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    (tmp_path / "checkpoint-4").mkdir()  # killed before its state was written
    half = tmp_path / "checkpoint-6"
    half.mkdir()
    (half / "trainer_state.json").write_text('{"global_step": 6, "log_hist')  # killed while writing it
    assert training._latest_checkpoint(tmp_path) == str(complete)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]  # the incomplete ones are gone
    assert training._latest_checkpoint(tmp_path / "nothing-here") is None
