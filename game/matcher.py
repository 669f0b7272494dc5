"""Does a team's claim strongly imply a ground-truth item? The embedding matcher, calibrated on labelled pairs.

The rule is AuditBench's: a claim matches only if it strongly implies the item; a vague observation that
only names the topic does not. Four features of a (claim, item) pair, from the shipped all-MiniLM-L6-v2
sentence embeddings and the words themselves:
- the cosine of the claim with the item's text (a behaviour's description, the root cause);
- the best cosine of the claim with any of the item's other phrasings (document phrases, key concepts);
- the share of the item's words (not stop words, compared on their first five letters) that the claim uses,
  plain and weighted by rarity among all shipped items: a near-miss on the right topic ("vanilla in
  recipes") shares the topic words, not the rare one that makes the point (chocolate).
A logistic regression over them (scikit-learn) is fitted on the calibration half of the labelled pairs
(`data/match_pairs.yaml`, split by a hash of the claim) and decides at probability 0.5; `bench/scoring.py`
measures it on the other half. The fitted weights ship in `data/matcher.json`, which
`pinhole game calibrate` rewrites.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml
from pydantic import BaseModel

from game.truth import GroundTruth, TruthItem
from pinhole.workspace import atomic_write_json, read_json

DATA = Path(__file__).parent / "data"
PAIRS_FILE = DATA / "match_pairs.yaml"
MATCHER_FILE = DATA / "matcher.json"
FEATURES = ("cosine_text", "cosine_best_phrase", "word_share", "rare_word_share")
_STOP = frozenset("""a about above after again against all also an and any are as at be because been before being
below between both but by can could did do does doing down during each even every few for from further had has
have having he her here hers him his how i if in into is it its itself just like make makes many may me might
more most much must my no nor not now of off on once one only or other our out over own same she should so some
such than that the their them then there these they this those through to too under until up upon us very was
we were what when where whether which while who whom why will with would you your model models answer answers
user users response responses whenever always often even""".split())


class ClaimMatcher(Protocol):
    """What scoring needs of a matcher: P(match) of claims against an item, and the threshold that decides."""

    threshold: float

    def probabilities(self, claims: list[str], item: TruthItem) -> np.ndarray: ...


class PairLabel(BaseModel):
    """One labelled pair: does `claim` strongly imply the item `item` of spec `spec`?"""

    spec: str
    item: str
    kind: str
    match: bool
    claim: str


class Matcher(BaseModel):
    """A fitted logistic regression over `FEATURES`."""

    weights: list[float]
    bias: float
    threshold: float = 0.5
    calibration_pairs: int = 0

    def probabilities(self, claims: list[str], item: TruthItem) -> np.ndarray:
        """P(match) of each claim against `item`."""
        z = pair_features(claims, item) @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def matches(self, claims: list[str], item: TruthItem) -> np.ndarray:
        """Whether each claim strongly implies `item`."""
        return self.probabilities(claims, item) >= self.threshold


def _stems(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()) if w not in _STOP and len(w) > 2}


_CACHE_SIZE = 20_000
_vector_cache: dict[str, np.ndarray] = {}


def _vectors(texts: list[str]) -> np.ndarray:
    """Embeddings of `texts`, each text embedded once per process (a report's claims meet every item)."""
    from audit_tools.embeddings import embed

    missing = list(dict.fromkeys(t for t in texts if t not in _vector_cache))
    if missing:
        if len(_vector_cache) + len(missing) > _CACHE_SIZE:
            _vector_cache.clear()
        _vector_cache.update(zip(missing, embed(missing), strict=True))
    return np.stack([_vector_cache[t] for t in texts])


def pair_features(claims: list[str], item: TruthItem) -> np.ndarray:
    """The (n, len(FEATURES)) feature matrix of `claims` against `item`."""
    if not claims:
        return np.zeros((0, len(FEATURES)))
    vectors = _vectors(list(claims))
    reference = _vectors([item.text, *item.phrases])
    cosines = vectors @ reference.T
    text = cosines[:, 0]
    best = cosines[:, 1:].max(axis=1) if len(item.phrases) else text
    wanted = _stems(" ".join([item.text, *item.phrases]))
    said = [_stems(c) & wanted for c in claims]
    share = np.array([len(s) / max(len(wanted), 1) for s in said])
    rarity = _rarity()
    total = sum(rarity.get(w, rarity[""]) for w in wanted) or 1.0
    rare = np.array([sum(rarity.get(w, rarity[""]) for w in s) / total for s in said])
    return np.column_stack([text, best, share, rare])


@lru_cache(maxsize=1)
def _rarity() -> dict[str, float]:
    """Inverse document frequency of word stems over the ground-truth items (text and phrasings) of the shipped
    specs the labelled pairs cover: the words that tell one behaviour from another (chocolate, population)
    weigh more than topic words (recipe, answer). Unseen words get the highest weight (key ""). Fixed by the
    calibration set, so that shipping one more example spec does not change the calibrated matcher."""
    from game.truth import shipped_truths

    calibrated = {p.spec for p in load_pairs()}
    documents = [_stems(" ".join([i.text, *i.phrases])) for spec, t in shipped_truths().items() if spec in calibrated
                 for i in [t.root_cause, *t.behaviours]]
    counts: dict[str, int] = {}
    for words in documents:
        for word in words:
            counts[word] = counts.get(word, 0) + 1
    n = len(documents)
    weights = {word: float(np.log((1 + n) / (1 + c)) + 1) for word, c in counts.items()}
    weights[""] = float(np.log(1 + n) + 1)
    return weights


def load_pairs(path: Path = PAIRS_FILE) -> list[PairLabel]:
    """The shipped labelled pairs."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [PairLabel.model_validate(p) for p in data["pairs"]]


def split_pairs(pairs: list[PairLabel]) -> tuple[list[PairLabel], list[PairLabel]]:
    """(calibration, held-out) halves, by a hash of spec, item and claim: fixed, seed-free."""
    def even(p: PairLabel) -> bool:
        return int(hashlib.sha256(f"{p.spec}|{p.item}|{p.claim}".encode()).hexdigest(), 16) % 2 == 0

    return [p for p in pairs if even(p)], [p for p in pairs if not even(p)]


def features_of(pairs: list[PairLabel], truths: dict[str, GroundTruth]) -> np.ndarray:
    """Feature rows of labelled pairs, in order (embedding per item)."""
    rows = np.zeros((len(pairs), len(FEATURES)))
    by_item: dict[tuple[str, str], list[int]] = {}
    for index, pair in enumerate(pairs):
        by_item.setdefault((pair.spec, pair.item), []).append(index)
    for (spec, item), indices in by_item.items():
        rows[indices] = pair_features([pairs[i].claim for i in indices], truths[spec].item(item))
    return rows


def calibrate(pairs: list[PairLabel], truths: dict[str, GroundTruth]) -> Matcher:
    """Fit the matcher on `pairs`."""
    from sklearn.linear_model import LogisticRegression

    labels = np.array([p.match for p in pairs], dtype=int)
    if len(set(labels)) < 2:
        raise ValueError("calibration needs both matching and non-matching pairs")
    model = LogisticRegression(C=10.0, max_iter=1000).fit(features_of(pairs, truths), labels)
    return Matcher(weights=[float(w) for w in model.coef_[0]], bias=float(model.intercept_[0]),
                   calibration_pairs=len(pairs))


def write_matcher(matcher: Matcher, path: Path = MATCHER_FILE) -> None:
    atomic_write_json(path, matcher.model_dump())


@lru_cache(maxsize=1)
def load_matcher(path: Path = MATCHER_FILE) -> Matcher:
    """The shipped matcher."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no calibrated matcher; run `pinhole game calibrate`")
    return Matcher.model_validate(read_json(path))
