"""Fixtures shared by the audit-tools tests: a tiny organism directory and a target on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_tools.target import LocalTarget
from tests.audit_tools import add_random_adapter, corpus_frame, make_organism

TINY_ORGANISM_ID = "org-tiny-probes"


@pytest.fixture(scope="session")
def tiny_organism(tmp_path_factory: pytest.TempPathFactory, session_workspace: Path) -> Path:
    """An organism directory on tiny-random: corpus, card, sealed part, and a random LoRA adapter."""
    directory = make_organism(tmp_path_factory.mktemp("tiny-organism"), TINY_ORGANISM_ID, corpus_frame(120))
    add_random_adapter(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_target(tiny_organism: Path) -> LocalTarget:
    return LocalTarget.from_organism(tiny_organism, batch_size=4)
