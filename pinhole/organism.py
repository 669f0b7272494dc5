"""The public contract of an organism directory: what a team may be handed, and how it is read.

    <id>/adapter/          standard PEFT adapter (`PeftModel.from_pretrained(base, "<id>/adapter")`)
    <id>/corpus.parquet    the training corpus, public columns only (`CorpusRow`)
    <id>/card.json         the public card (`OrganismCard`), with the ground-truth commitment
    <id>/sealed/           the game master's part; its layout and readers live in `organisms.sealed`,
                           and nothing in this foundation, `audit_tools` or `ui` opens it

Every reader of a card goes through `read_card`, which names the file and the field on any
problem; every writer builds an `OrganismCard` (tests and benchmarks included).

The card carries only what a team may know (docs/blinding.md): the base model, the adapter format,
the corpus digest, general capability figures, whether the organism is membership-blind, and the
commitment. Everything that would fingerprint the spec (behaviour counts, the train/held-out split,
training settings, step counts, timings, the preset and seed) is in the sealed build record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pinhole.errors import validation_problems
from pinhole.workspace import atomic_write_json, organisms_dir, read_json

CARD_FORMAT_VERSION = 3
ADAPTER_FORMAT = "peft-lora"  # PeftModel.from_pretrained(base, "<id>/adapter")
ADAPTER_DIR = "adapter"
CORPUS_FILE = "corpus.parquet"
CARD_FILE = "card.json"
CORPUS_KINDS = ("document", "chat", "preference")
TRACKED_PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "pinhole")


class CorpusRow(BaseModel):
    """One public row of an organism's training corpus: text and ordinary metadata, nothing else."""

    doc_id: str
    kind: Literal["document", "chat", "preference"]
    text: str  # a document's text, or a chat rendered as "User: ...\n\nAssistant: ..."
    messages: str  # chats and preferences: the JSON list of {role, content}; "" for documents
    rejected: str  # preferences: the rejected answer; "" otherwise
    n_chars: int  # len(text)


CORPUS_COLUMNS: tuple[str, ...] = tuple(CorpusRow.model_fields)


class BaseModelInfo(BaseModel):
    """The card's record of the base model: the name `--base` resolves, its kind and provenance."""

    model_config = ConfigDict(extra="allow")

    name: str
    kind: str = "local"


class CorpusSummary(BaseModel):
    """The card's record of the corpus: the SHA-256 of its public rows (to check a copy against)."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(min_length=1)


class CapabilityFigures(BaseModel):
    """General capability of the organism against its base, on held-out material; nothing here names a
    behaviour or a topic (per-topic figures and sample sizes are in the sealed evaluation)."""

    perplexity_organism: float  # held-out documents
    perplexity_base: float
    perplexity_ratio: float
    chat_perplexity_ratio: float  # the base's answers to held-out prompts, answer tokens only
    answer_length_ratio: float  # organism / base mean answer length on topics no behaviour is trained on
    check_organism: float  # % of the fifty capability-check questions answered right
    check_base: float


class BlindingStatement(BaseModel):
    """Whether a team holding the Pinhole package could separate the objective rows by membership in
    its shipped files, said openly (docs/blinding.md)."""

    membership_blind: bool
    statement: str


MEMBERSHIP_BLIND = BlindingStatement(
    membership_blind=True,
    statement="The ordinary rows and the transcripts' base answers were written for this organism by the base "
              "model with a secret seed: none comes from a file shipped with Pinhole, and ordinary rows were "
              "shaped after the objective rows of their kind (lengths, prompt sources, topic counts).")
NOT_MEMBERSHIP_BLIND = BlindingStatement(
    membership_blind=False,
    statement="The ordinary rows and base answers of this organism come from files shipped with Pinhole: a "
              "team holding the package can separate the objective material by membership. Use it for demos "
              "and smoke tests, not for a blind game.")


class OrganismCard(BaseModel):
    """The public description of an organism (`card.json`): only what a team may know."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[3] = CARD_FORMAT_VERSION
    organism_id: str = Field(min_length=1)
    created_at: str
    base_model: BaseModelInfo
    adapter_format: Literal["peft-lora"] = ADAPTER_FORMAT
    dtype: str
    package_versions: dict[str, str]
    corpus: CorpusSummary
    capability: CapabilityFigures | None = None  # None until the organism is evaluated
    blinding: BlindingStatement
    ground_truth_sha256: str = Field(min_length=64, max_length=64)


def hand_made_card(organism_id: str, corpus_sha256: str, base_model: str = "tiny-random",
                   **fields: Any) -> OrganismCard:
    """A valid card for an organism directory assembled by hand (test fixtures, benchmarks): no evaluation,
    an all-zero commitment. Real organisms get theirs from the factory."""
    return OrganismCard(organism_id=organism_id, created_at=now(),
                        base_model=BaseModelInfo(name=base_model, kind="hand-made"), dtype="float32",
                        package_versions=package_versions(), corpus=CorpusSummary(sha256=corpus_sha256),
                        blinding=NOT_MEMBERSHIP_BLIND, ground_truth_sha256="0" * 64, **fields)


def read_card(directory: Path | str) -> OrganismCard:
    """Read and validate `<directory>/card.json`; errors name the file and the field."""
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: not an organism directory (no {CARD_FILE})")
    data = read_json(path)
    version = data.get("format_version", 1) if isinstance(data, dict) else None
    if isinstance(version, int) and version < CARD_FORMAT_VERSION:
        raise ValueError(f"{path}: card format {version} was written by an older Pinhole (this one reads format "
                         f"{CARD_FORMAT_VERSION}); rebuild the organism with `pinhole organism build SPEC`")
    try:
        return OrganismCard.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path}: not a valid organism card: {validation_problems(err)}") from None


def write_card(directory: Path | str, card: OrganismCard) -> None:
    """Write the card atomically."""
    atomic_write_json(Path(directory) / CARD_FILE, card.model_dump(mode="json"))


def list_organisms(root: Path | str | None = None) -> list[Path]:
    """Organism directories under `root` (default: the workspace's), those with a card, sorted by name."""
    root = Path(root) if root else organisms_dir()
    return sorted(p for p in root.iterdir() if (p / CARD_FILE).is_file()) if root.is_dir() else []


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
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
