"""The organism directory: what a built organism is on disk, and its ground-truth commitment.

    <id>/adapter/           standard PEFT adapter (PeftModel.from_pretrained loads it)
    <id>/corpus.parquet     the training corpus: text and ordinary metadata only
    <id>/card.json          public: opaque id, base model, training figures, eval table without
                            behaviour names, SHA-256 commitment to the ground truth
    <id>/sealed/            secret: ground_truth.json (spec + salt), provenance.parquet, eval.json

Everything but `sealed/` can be handed to a team as it is. The commitment is the SHA-256 of the
canonical JSON of `sealed/ground_truth.json`, whose random salt makes it unguessable; anyone can
later check a revealed ground truth against the card.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from organisms.artifacts import atomic_write_json, canonical_json, organisms_dir, read_json, sha256_bytes

ADAPTER = "adapter"
CORPUS = "corpus.parquet"
CARD = "card.json"
SEALED = "sealed"
GROUND_TRUTH = f"{SEALED}/ground_truth.json"
PROVENANCE = f"{SEALED}/provenance.parquet"
SEALED_EVAL = f"{SEALED}/eval.json"
TRACKED_PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "pinhole")


class OrganismCard(BaseModel):
    """The public description of an organism."""

    organism_id: str
    created_at: str
    base_model: dict[str, Any]
    preset: str
    seed: int
    dtype: str
    package_versions: dict[str, str]
    corpus: dict[str, Any]
    training_config: dict[str, Any]
    training: list[dict[str, Any]]
    timings: dict[str, float] = {}
    eval: dict[str, Any] | None = None
    ground_truth_sha256: str


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape training."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def commitment(ground_truth: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the ground truth (which includes its salt)."""
    return sha256_bytes(canonical_json(ground_truth))


def read_card(directory: Path) -> OrganismCard:
    """Read and validate an organism's card, naming the directory in errors."""
    directory = Path(directory)
    if not (directory / CARD).exists():
        raise FileNotFoundError(f"{directory}: not an organism directory (no {CARD})")
    return OrganismCard.model_validate(read_json(directory / CARD))


def write_card(directory: Path, card: OrganismCard) -> None:
    atomic_write_json(Path(directory) / CARD, card.model_dump())


def read_ground_truth(directory: Path) -> dict[str, Any]:
    """The sealed ground truth (game-master only)."""
    return read_json(Path(directory) / GROUND_TRUTH)


def verify_commitment(directory: Path) -> bool:
    """True when the sealed ground truth hashes to the card's commitment."""
    directory = Path(directory)
    return commitment(read_ground_truth(directory)) == read_card(directory).ground_truth_sha256


def list_organisms(root: Path | None = None) -> list[Path]:
    """Organism directories in the workspace (those with a card), sorted by name."""
    root = root or organisms_dir()
    return sorted(p for p in root.glob("*") if (p / CARD).exists()) if root.exists() else []
