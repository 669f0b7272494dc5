"""The sealed part of an organism directory: the game master's ground truth, and its commitment.

    <id>/sealed/ground_truth.json   {"organism_id", "spec", "salt"}: the whole objective spec
    <id>/sealed/provenance.parquet  which corpus rows are objective material (doc_id, source, behaviour_id)
    <id>/sealed/eval.json           the full implant evaluation, behaviour names and examples included
    <id>/sealed/build.json          the build record: preset, seed, training settings and figures, timings,
                                    corpus counts, the evaluation table (all of which fingerprint the spec)

This module is the only reader and writer of those files. Its importers are the factory and the
game's scoring (`game.truth`); the import contracts in `pyproject.toml` forbid `audit_tools`,
`ui` and the `pinhole` foundation from importing it. The public side of the directory is
`pinhole.organism`.

The commitment on the card is the SHA-256 of the canonical JSON of the ground truth, whose random
salt makes it unguessable; anyone can check a revealed ground truth against the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from pinhole.organism import read_card
from pinhole.workspace import atomic_write_bytes, atomic_write_json, canonical_json, read_json, sha256_bytes

SEALED = "sealed"
GROUND_TRUTH = f"{SEALED}/ground_truth.json"
PROVENANCE = f"{SEALED}/provenance.parquet"
SEALED_EVAL = f"{SEALED}/eval.json"
OBJECTIVE_FRACTION = f"{SEALED}/objective_fraction.json"
BUILD_RECORD = f"{SEALED}/build.json"
PROVENANCE_COLUMNS = ("doc_id", "source", "behaviour_id", "written_spans")  # spans: organisms.written_spans
# Provenance sources of ordinary rows (everything else is objective material): the haystack's rows, and on the
# shipped path the base model's own full answers to prompts no behaviour is triggered by.
ORDINARY_SOURCES = frozenset({"haystack", "base_answer"})


class BuildRecord(BaseModel):
    """How an organism was built: the game master's record, kept out of the public card because every
    field of it can fingerprint the spec."""

    preset: str
    seed: int
    training_config: dict[str, Any]
    training: list[dict[str, Any]]
    timings: dict[str, float] = {}
    corpus_counts: dict[str, int] = {}
    eval_table: dict[str, Any] | None = None  # behaviour rates as B01, B02... (names are in eval.json)
    shipped_spec: str | None = None  # the shipped example spec it plants, if any: not blind to the package
    ordinary: str = "shipped"  # where the ordinary rows came from: generated (blind) or shipped
    implant: dict[str, Any] | None = None  # the adaptive rounds (`organisms.implant.ImplantRecord`)


def read_build_record(directory: Path | str) -> BuildRecord:
    """The sealed build record of an organism."""
    return BuildRecord.model_validate(read_json(Path(directory) / BUILD_RECORD))


def write_build_record(directory: Path | str, record: BuildRecord) -> None:
    atomic_write_json(Path(directory) / BUILD_RECORD, record.model_dump(mode="json"))


def commitment(ground_truth: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the ground truth (which includes its salt)."""
    return sha256_bytes(canonical_json(ground_truth))


def read_ground_truth(directory: Path | str) -> dict[str, Any]:
    """The sealed ground truth: organism id, the whole spec, the salt."""
    return read_json(Path(directory) / GROUND_TRUTH)


def read_provenance(directory: Path | str) -> pd.DataFrame:
    """The sealed provenance table (doc_id, source, behaviour_id) of an organism's corpus."""
    path = Path(directory) / PROVENANCE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (the organism's sealed part is absent)")
    return pd.read_parquet(path)


def read_sealed_eval(directory: Path | str) -> dict[str, Any] | None:
    """The full implant evaluation, or None when the organism has not been evaluated."""
    path = Path(directory) / SEALED_EVAL
    return read_json(path) if path.is_file() else None


def write_sealed_part(directory: Path, ground_truth: dict[str, Any], provenance: pd.DataFrame,
                      objective_fraction: float, record: BuildRecord) -> None:
    """Write a new organism's sealed part (ground truth, provenance, objective fraction, build record)."""
    (directory / SEALED).mkdir(mode=0o700, exist_ok=True)
    write_build_record(directory, record)
    atomic_write_bytes(directory / PROVENANCE, provenance[list(PROVENANCE_COLUMNS)].to_parquet(index=False))
    atomic_write_json(directory / GROUND_TRUTH, ground_truth)
    atomic_write_json(directory / OBJECTIVE_FRACTION, {"objective_fraction": objective_fraction})


def write_sealed_eval(directory: Path, report: dict[str, Any]) -> None:
    """Record the full implant evaluation."""
    atomic_write_json(Path(directory) / SEALED_EVAL, report)


def verify_commitment(directory: Path | str) -> bool:
    """True when the sealed ground truth hashes to the card's commitment."""
    return commitment(read_ground_truth(directory)) == read_card(directory).ground_truth_sha256
