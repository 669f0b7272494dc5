"""Test session set-up: a fresh workspace per session, sharing the prepared base models.

`make test` prepares the default base into ./workspace/base_models first; tests reuse it through
`PINHOLE_BASE_MODELS` instead of converting it again. Everything else a test writes goes to a
temporary `PINHOLE_HOME`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.openai_server"]  # the `server` fixture: a real OpenAI-compatible server (llama.cpp)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PINHOLE_BASE_MODELS", str(Path(os.environ.get("PINHOLE_HOME", REPO / "workspace"))
                                                     / "base_models"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # `auto` is bf16 on a CPU that has it; the suite's numerical checks (finite differences, exact reproductions)
    # assume fp32 on every machine. bf16 paths are tested where they are named (test_microscope's bf16 test).
    os.environ.setdefault("PINHOLE_DTYPE", "float32")
    os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def session_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session writes into its own workspace."""
    home = tmp_path_factory.mktemp("pinhole-home")
    os.environ["PINHOLE_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tiny_organism(tmp_path_factory: pytest.TempPathFactory, session_workspace: Path) -> Path:
    """An organism directory on tiny-random: corpus, card, sealed part, a random LoRA adapter, and an SAE
    with its feature index."""
    from tests.audit_tools import add_random_adapter, add_tiny_sae, corpus_frame, make_organism

    directory = make_organism(tmp_path_factory.mktemp("tiny-organism"), "org-tiny-probes", corpus_frame(120))
    add_random_adapter(directory)
    add_tiny_sae(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_target(tiny_organism: Path):
    """A `LocalTarget` on `tiny_organism` (batches of 4)."""
    from audit_tools.target import LocalTarget

    return LocalTarget.from_organism(tiny_organism, batch_size=4)
