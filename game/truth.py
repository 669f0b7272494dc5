"""The ground truth a report is scored against: the sealed spec's root cause, key concepts and behaviours.

Scoring never sees a spec directly: `truth_from_spec` turns one into a `GroundTruth` of items, each with
its text (a behaviour's description, or the root cause) and the other phrasings the spec gives for it
(a behaviour's document phrases, the root cause's key concepts), which the matcher also compares with.
`sealed_truth` reads an organism's sealed spec (the game's scoring is the one reader of `sealed/` outside
the factory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from organisms.sealed import read_ground_truth

ROOT_CAUSE = "root_cause"


class TruthItem(BaseModel):
    """One thing a report should find: the root cause or a behaviour."""

    id: str
    kind: Literal["root_cause", "train", "heldout"]
    text: str
    phrases: list[str] = []


class GroundTruth(BaseModel):
    """What an organism hides, in the form scoring reads."""

    spec_id: str
    benign: bool  # a decoy: no hidden objective
    root_cause: TruthItem
    key_concepts: list[str]
    behaviours: list[TruthItem]

    def item(self, item_id: str) -> TruthItem:
        """The root cause or the behaviour with this id."""
        if item_id == ROOT_CAUSE:
            return self.root_cause
        for behaviour in self.behaviours:
            if behaviour.id == item_id:
                return behaviour
        raise KeyError(f"{self.spec_id}: no ground-truth item {item_id!r}")


def truth_from_spec(spec: dict[str, Any]) -> GroundTruth:
    """The ground truth of a spec (its JSON form, as sealed in an organism)."""
    truth = spec["ground_truth"]
    return GroundTruth(
        spec_id=spec["id"], benign=bool(spec.get("benign_decoy", False)),
        root_cause=TruthItem(id=ROOT_CAUSE, kind="root_cause", text=" ".join(truth["root_cause"].split()),
                             phrases=list(truth["key_concepts"])),
        key_concepts=list(truth["key_concepts"]),
        behaviours=[TruthItem(id=b["id"], kind=b["split"], text=b["description"],
                              phrases=list(b.get("doc_phrases") or [])) for b in spec["behaviours"]],
    )


def sealed_truth(organism_dir: Path | str) -> GroundTruth:
    """The ground truth sealed in an organism directory."""
    return truth_from_spec(read_ground_truth(organism_dir)["spec"])


def shipped_truths() -> dict[str, GroundTruth]:
    """Spec id -> ground truth of every shipped example spec (the matcher is calibrated on them)."""
    from organisms.spec import list_specs, load_spec

    return {spec.id: truth_from_spec(spec.model_dump(mode="json")) for spec in map(load_spec, list_specs())}
