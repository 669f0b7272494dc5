"""Reading a feature index: feature pages, feature search, labels and densities, nearest features.

`FeatureIndex` opens `features.duckdb` read-only (one cursor per thread) and turns its rows into
typed records the CLI and the UI render. Nearest features are by cosine between decoder directions,
computed from the SAE's weights on demand.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import torch
from pydantic import BaseModel

from audit_tools.feature_index import IndexInfo, current_info, histogram_edges, index_path
from audit_tools.sql_sandbox import base_config, load_extensions

MAX_LIMIT = 200


class TokenActivation(BaseModel):
    """One token of a context and the feature's activation on it."""

    token: str
    activation: float


class FeatureContext(BaseModel):
    """A top activating context: a window of corpus tokens around the feature's peak."""

    doc_id: str
    peak_activation: float
    tokens: list[TokenActivation]


class NearFeature(BaseModel):
    """A feature whose decoder direction is close to another's."""

    feature_id: int
    cosine: float
    label: str


class FeatureSummary(BaseModel):
    """A feature in a list: its id, label and how often it fires."""

    feature_id: int
    label: str
    density: float
    score: float | None = None


class FeaturePage(BaseModel):
    """Everything the index knows of one feature."""

    feature_id: int
    label: str
    density: float
    fire_count: int
    max_activation: float
    mean_activation: float
    histogram_counts: list[int]
    histogram_edges: list[float]
    context_words: list[str]
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    contexts: list[FeatureContext]
    nearest: list[NearFeature]


class FeatureIndex:
    """A built feature index, read-only."""

    def __init__(self, folder: Path, decoder: torch.Tensor) -> None:
        info = current_info(folder)
        if info is None:
            raise FileNotFoundError(f"{index_path(folder)}: no current feature index; build it with "
                                    f"`pinhole sae index ORGANISM_DIR`")
        self.info: IndexInfo = info
        self.folder = folder
        self._con = duckdb.connect(str(index_path(folder)), read_only=True, config=base_config())
        load_extensions(self._con, ("fts",))
        self._local = threading.local()
        self._directions = torch.nn.functional.normalize(decoder.detach().float(), dim=1)
        self.n_features = len(self._directions)
        rows = self._con.execute("SELECT feature_id, density, label, max_activation FROM features "
                                 "ORDER BY feature_id").fetchall()
        if len(rows) != self.n_features:
            raise ValueError(f"{index_path(folder)}: indexes {len(rows)} features, the SAE has {self.n_features}")
        self.density = torch.tensor([r[1] for r in rows], dtype=torch.float64)
        self.labels = [r[2] for r in rows]
        self.max_activations = torch.tensor([r[3] for r in rows], dtype=torch.float64)  # each feature's corpus peak

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
        return cursor

    def check_feature(self, feature_id: int) -> int:
        """`feature_id`, or a ValueError naming the valid range."""
        if isinstance(feature_id, bool) or not isinstance(feature_id, int) or not 0 <= feature_id < self.n_features:
            raise ValueError(f"feature {feature_id!r}: out of range (this SAE has features 0 to {self.n_features - 1})")
        return feature_id

    def max_activation(self, feature_id: int) -> float:
        """The feature's largest activation on the corpus."""
        return float(self.max_activations[self.check_feature(feature_id)])

    def summary(self, feature_id: int, score: float | None = None) -> FeatureSummary:
        """A feature's id, label and density."""
        return FeatureSummary(feature_id=feature_id, label=self.labels[feature_id],
                              density=float(self.density[feature_id]), score=score)

    def nearest(self, feature_id: int, limit: int = 10) -> list[NearFeature]:
        """The features whose decoder directions have the highest cosine with this one's."""
        self.check_feature(feature_id)
        return self.nearest_to(self._directions[feature_id], limit, exclude=feature_id)

    def nearest_to(self, direction: torch.Tensor, limit: int = 10, exclude: int | None = None) -> list[NearFeature]:
        """The features whose decoder directions are closest (cosine) to a residual-stream direction."""
        _check_limit(limit)
        cosines = self._directions @ torch.nn.functional.normalize(direction.float().view(-1), dim=0)
        if exclude is not None:
            cosines[exclude] = -2.0
        top = cosines.topk(min(limit, self.n_features))
        return [NearFeature(feature_id=int(i), cosine=round(float(c), 4), label=self.labels[int(i)])
                for c, i in zip(top.values, top.indices, strict=True) if c > -2.0]

    def page(self, feature_id: int, contexts: int = 20, nearest: int = 10) -> FeaturePage:
        """The feature's page: label, density, histogram, top contexts, logit effects, nearest features."""
        self.check_feature(feature_id)
        cursor = self._cursor()
        row = cursor.execute("SELECT label, density, fire_count, max_activation, mean_activation, histogram, "
                             "context_words, promoted, promoted_logits, suppressed, suppressed_logits "
                             "FROM features WHERE feature_id = ?", [feature_id]).fetchone()
        found = cursor.execute("SELECT doc_id, peak_activation, tokens, activations FROM contexts "
                               "WHERE feature_id = ? ORDER BY rank LIMIT ?", [feature_id, contexts]).fetchall()
        return FeaturePage(
            feature_id=feature_id, label=row[0], density=row[1], fire_count=row[2], max_activation=row[3],
            mean_activation=row[4], histogram_counts=row[5], histogram_edges=histogram_edges(),
            context_words=row[6], promoted=list(zip(row[7], row[8], strict=True)),
            suppressed=list(zip(row[9], row[10], strict=True)),
            contexts=[FeatureContext(doc_id=c[0], peak_activation=c[1],
                                     tokens=[TokenActivation(token=t, activation=a)
                                             for t, a in zip(c[2], c[3], strict=True)]) for c in found],
            nearest=self.nearest(feature_id, nearest) if nearest else [])

    def search(self, query: str, limit: int = 20) -> list[FeatureSummary]:
        """Features whose label or top contexts match the words of `query` (BM25)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query: expected a non-empty search string, got {query!r}")
        _check_limit(limit)
        rows = self._cursor().execute(
            "SELECT feature_id, score FROM (SELECT feature_id, fts_main_features.match_bm25(feature_id, ?) AS score "
            "FROM features) WHERE score IS NOT NULL ORDER BY score DESC, feature_id LIMIT ?",
            [query.strip(), limit]).fetchall()
        return [self.summary(int(f), round(float(s), 4)) for f, s in rows]

    def close(self) -> None:
        """Close the database connection."""
        self._con.close()


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit!r}")
