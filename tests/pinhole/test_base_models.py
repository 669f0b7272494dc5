"""Base-model resolution, preparation and dtype choice."""

from __future__ import annotations

import pytest
import torch

from pinhole.base_models import (
    DEFAULT_BASE,
    prepare_base,
    resolve_base,
    resolve_dtype,
)


def test_names_resolve_to_kinds(tmp_path) -> None:
    assert resolve_base("default").kind == "smollm2" and resolve_base("default").name == DEFAULT_BASE
    assert resolve_base("tiny-random").kind == "tiny-random"
    assert resolve_base("HuggingFaceTB/SmolLM2-360M-Instruct").kind == "hub"
    (tmp_path / "config.json").write_text("{}")
    assert resolve_base(str(tmp_path)).kind == "local"


def test_bad_names_are_explained(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a known base"):
        resolve_base("no such model")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_base(str(tmp_path))


def test_prepare_is_idempotent_and_tiny_random_is_tiny() -> None:
    first = prepare_base("tiny-random", progress=False)
    again = prepare_base("tiny-random", progress=False)
    assert first == again
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(first.path)
    assert config.num_hidden_layers == 2 and config.hidden_size == 64


def test_dtype_override(monkeypatch) -> None:
    assert resolve_dtype("float32") == torch.float32
    assert resolve_dtype("bfloat16") == torch.bfloat16
    monkeypatch.setenv("PINHOLE_DTYPE", "float32")
    assert resolve_dtype("auto") == torch.float32
    with pytest.raises(ValueError, match="dtype 'half'"):
        resolve_dtype("half")
