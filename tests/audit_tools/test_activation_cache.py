"""The activation cache read back by the feature index: the same index as a full pass, fewer rows through the model,
and a cached row is used only when its tokens are the corpus row's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from audit_tools.activation_cache import activation_key, cache_folder, cached_rows
from audit_tools.feature_index import build_feature_index
from audit_tools.feature_pages import FeatureIndex
from audit_tools.sae_store import adapter_sha256, load_sae, read_info, saes_root
from audit_tools.sae_training import SaeSettings, train_sae
from audit_tools.target import LocalTarget
from tests.audit_tools import TINY_SAE_SETTINGS, add_random_adapter, corpus_frame, make_organism


@pytest.fixture()
def trained(tmp_path: Path, session_workspace: Path) -> tuple[Path, Path, LocalTarget]:
    """A fresh organism with a tiny SAE trained (its activations cached) and not yet indexed."""
    directory = make_organism(tmp_path / "org", "org-tiny-cache", corpus_frame(70, seed=11))
    add_random_adapter(directory, seed=7)
    target = LocalTarget.from_organism(directory, batch_size=4)
    info = train_sae(directory, SaeSettings(**TINY_SAE_SETTINGS), target=target, progress=False)
    return directory, saes_root(directory) / info.name, target


def _chunks(directory: Path, sae_folder: Path) -> list[Path]:
    info = read_info(sae_folder)
    key = activation_key(adapter_sha256(directory), info.layer, info.settings["context_tokens"], info.settings["seed"])
    return sorted(cache_folder(key).glob("chunk-*.safetensors"))


def _index(directory: Path, sae_folder: Path, target: LocalTarget, copy_to: Path, reuse: bool) -> FeatureIndex:
    folder = shutil.copytree(sae_folder, copy_to)
    build_feature_index(directory, folder, target=target, progress=False, reuse_activations=reuse)
    return FeatureIndex(folder, load_sae(folder).W_dec)


def test_an_index_from_the_cache_equals_one_read_through_the_model(trained, tmp_path: Path) -> None:
    directory, sae_folder, target = trained
    cached = _index(directory, sae_folder, target, tmp_path / "cached", reuse=True)
    fresh = _index(directory, sae_folder, target, tmp_path / "fresh", reuse=False)
    assert fresh.info.reused_tokens == 0
    assert 0 < cached.info.reused_tokens < cached.info.tokens  # the cache holds part of the corpus
    assert cached.info.tokens == fresh.info.tokens
    assert torch.allclose(cached.density, fresh.density)
    assert torch.allclose(cached.max_activations, fresh.max_activations, rtol=1e-4, atol=1e-5)
    assert cached.labels == fresh.labels
    for feature in range(0, cached.n_features, 7):  # top contexts agree up to ties (templated rows tie exactly)
        ours, theirs = cached.page(feature, contexts=5, nearest=0), fresh.page(feature, contexts=5, nearest=0)
        peaks = [c.peak_activation for c in ours.contexts]
        assert peaks == pytest.approx([c.peak_activation for c in theirs.contexts], rel=1e-4, abs=1e-5)
        above_ties = [c for c in ours.contexts if c.peak_activation > peaks[-1] + 1e-4]
        assert {(c.doc_id, tuple(t.token for t in c.tokens)) for c in above_ties} <= \
            {(c.doc_id, tuple(t.token for t in c.tokens)) for c in theirs.contexts}


def test_a_cached_row_is_used_only_with_the_corpus_rows_own_tokens_and_older_chunks_are_redone(trained,
                                                                                                tmp_path: Path) -> None:
    directory, sae_folder, target = trained
    chunks = _chunks(directory, sae_folder)
    cached_tokens = sum(int(load_file(str(c))["counts"].sum()) for c in chunks)
    first = chunks[0]
    chunk = load_file(str(first))
    tokens_of_first_row = int(chunk["counts"][0])
    chunk["token_ids"][0] += 1  # the first row's cached tokens no longer match the corpus
    save_file(chunk, str(first))
    altered = next(iter(cached_rows(first.parent)))
    assert altered[int(chunk["rows"][0])].token_ids[0] == int(chunk["token_ids"][0])
    full = _index(directory, sae_folder, target, tmp_path / "full", reuse=True)
    assert full.info.reused_tokens == cached_tokens - tokens_of_first_row
    save_file({"acts": chunk["acts"]}, str(first))  # a chunk from before rows were recorded: vectors alone
    older = _index(directory, sae_folder, target, tmp_path / "older", reuse=True)
    assert older.info.reused_tokens == full.info.reused_tokens - (int(chunk["counts"].sum()) - tokens_of_first_row)
    assert older.info.tokens == full.info.tokens
    assert torch.allclose(older.density, full.density)
    train_sae(directory, SaeSettings(**{**TINY_SAE_SETTINGS, "k": 4}), target=target, progress=False)  # same cache
    redone = load_file(str(first))
    assert "rows" in redone and torch.allclose(redone["acts"], chunk["acts"], atol=1e-5)
