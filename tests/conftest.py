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


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PINHOLE_BASE_MODELS", str(Path(os.environ.get("PINHOLE_HOME", REPO / "workspace"))
                                                     / "base_models"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def session_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session writes into its own workspace."""
    home = tmp_path_factory.mktemp("pinhole-home")
    os.environ["PINHOLE_HOME"] = str(home)
    return home
