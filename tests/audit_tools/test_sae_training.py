"""SAE training with sae-lens on a tiny organism: the on-disk format, the measured quality, caching and resuming."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from audit_tools.activation_cache import corpus_texts
from audit_tools.residual import residual_after
from audit_tools.sae_store import import_sae, list_saes, load_sae, read_info, sae_dir, saes_root
from audit_tools.sae_training import SaeSettings, shuffled_batches, train_sae
from tests.audit_tools import TINY_SAE_SETTINGS, add_random_adapter, corpus_frame, make_organism


@pytest.fixture()
def fresh_organism(tmp_path: Path) -> Path:
    directory = make_organism(tmp_path / "org", "org-tiny-sae", corpus_frame(80, seed=3))
    add_random_adapter(directory, seed=1)
    return directory


def test_the_trained_sae_is_a_sae_lens_folder_with_its_record(tiny_organism: Path, tiny_target) -> None:
    from sae_lens import SAE

    folder = sae_dir(tiny_organism)
    loaded = SAE.load_from_disk(str(folder))  # sae-lens' own loader, nothing of Pinhole
    info = read_info(folder)
    assert loaded.cfg.d_in == tiny_target.model.config.hidden_size == info.d_in
    assert loaded.cfg.d_sae == info.d_sae == info.d_in * 8
    assert loaded.cfg.metadata.hook_name == info.hook_name == f"model.layers.{info.layer}"
    assert info.layer == 1  # the middle of the tiny model's two layers
    text = corpus_texts(tiny_organism, tiny_target.tokenizer)[0]
    encoded = dict(tiny_target.tokenizer([text], return_tensors="pt", add_special_tokens=False))
    acts = residual_after(tiny_target.model, info.layer, encoded)[0, 1:]
    ours = load_sae(folder)
    assert torch.allclose(loaded.encode(acts), ours.encode(acts))
    q = info.quality
    assert q is not None and info.training is not None
    assert 0 <= q.dead_fraction <= 1 and q.l0 > 0 and q.eval_tokens > 0 and q.explained_variance <= 1
    recovered = (q.lm_loss_zero - q.lm_loss_spliced) / (q.lm_loss_zero - q.lm_loss_clean)
    assert q.lm_loss_recovered == pytest.approx(recovered, abs=1e-3)
    assert info.training.tokens_trained >= TINY_SAE_SETTINGS["training_tokens"] - TINY_SAE_SETTINGS["batch_tokens"]


def test_the_same_settings_return_the_cached_sae(tiny_organism: Path, tiny_target) -> None:
    before = list_saes(tiny_organism)
    again = train_sae(tiny_organism, SaeSettings(**TINY_SAE_SETTINGS), target=tiny_target, progress=False)
    assert [i.name for i in list_saes(tiny_organism)] == [i.name for i in before] and again.name == before[0].name


def test_training_resumes_from_its_last_checkpoint(fresh_organism: Path, monkeypatch) -> None:
    from sae_lens.training.sae_trainer import SAETrainer

    settings = SaeSettings(training_tokens=256 * 200, cached_tokens=2000, batch_tokens=256, k=8)
    original = SAETrainer.step

    def interrupted(self, batch):
        if self.n_training_steps == 120:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(SAETrainer, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_sae(fresh_organism, settings, progress=False)
    assert list_saes(fresh_organism) == []  # nothing published by a killed run
    monkeypatch.setattr(SAETrainer, "step", original)
    info = train_sae(fresh_organism, settings, progress=False)
    assert info.training.resumed and info.training.activation_seconds == 0  # activations came from the cache
    assert info.training.steps == 200 and info.training.tokens_trained == 256 * 200


def test_shuffled_batches_resume_where_they_stopped() -> None:
    acts = torch.arange(40.0).view(20, 2)
    whole = shuffled_batches(acts, 4, seed=1)
    first = [next(whole) for _ in range(12)]  # three passes of five batches, into the third
    later = shuffled_batches(acts, 4, seed=1, skip=7)
    assert all(torch.equal(a, next(later)) for a in first[7:])
    assert sorted(torch.cat(first[:5])[:, 0].tolist()) == acts[:, 0].tolist()  # a pass sees every row once


def test_a_pretrained_sae_folder_imports_with_its_layer_from_the_hook_name(tiny_organism: Path,
                                                                         fresh_organism: Path) -> None:
    source = sae_dir(tiny_organism)
    copy = fresh_organism.parent / "downloaded"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("pinhole_sae.json", "features.duckdb"))
    info = import_sae(fresh_organism, copy, name="pretrained")
    assert info.layer == 1 and info.source == "imported"
    assert torch.equal(load_sae(saes_root(fresh_organism) / "pretrained").W_dec, load_sae(source).W_dec)


def test_clear_errors(fresh_organism: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no SAE for this organism yet.*pinhole sae train"):
        sae_dir(fresh_organism)
    with pytest.raises(ValueError, match="layer 7: out of range .*layers 0 to 1"):
        train_sae(fresh_organism, SaeSettings(layer=7, **TINY_SAE_SETTINGS), progress=False)
    with pytest.raises(ValueError, match="architecture 'sparse-magic': expected one of .*batchtopk"):
        train_sae(fresh_organism, SaeSettings(architecture="sparse-magic", **TINY_SAE_SETTINGS), progress=False)
    with pytest.raises(FileNotFoundError, match="not a sae-lens SAE folder"):
        import_sae(fresh_organism, tmp_path)
    with pytest.raises(ValueError, match="batch_size"):  # a misspelt setting, not a silent default
        SaeSettings(batch_size=1024)


def test_the_command_line_defaults_are_the_settings_defaults() -> None:
    import inspect

    from audit_tools.sae_cli import sae_train

    options = inspect.signature(sae_train).parameters
    defaults = SaeSettings()
    for option, field in [("tokens", "training_tokens"), ("cached_tokens", "cached_tokens"),
                          ("architecture", "architecture"), ("expansion", "expansion"), ("k", "k"),
                          ("sparsity_coefficient", "sparsity_coefficient"), ("learning_rate", "learning_rate"),
                          ("batch_tokens", "batch_tokens")]:
        assert options[option].default == getattr(defaults, field), option
