"""The feature index: one pass of the public corpus through organism + SAE, stored in DuckDB beside the SAE.

Per feature it keeps what a feature page shows: density (share of tokens where it fires), max and
mean activation (over the tokens where it fires), a histogram of its activations on log-spaced bins,
the top activating contexts (a window of tokens around the peak with each token's activation), the
output tokens its decoder direction promotes and suppresses (through the final norm and the
unembedding), and a label made without any LLM: the distinctive words of its top contexts (weighted
by how rare they are in the corpus) and its top promoted tokens. Feature search is BM25 (DuckDB's
full-text extension) over labels and top contexts.

The pass keeps running top-k contexts per feature on tensors (no second pass): each batch's
per-row peaks are merged with the current top-k, and the windows are cut while the batch is at hand.
Rows whose residual stream SAE training already cached (`activation_cache`, same weights, layer and
context) are read from that cache instead of running the model again; the rest run through the model.
The file is written to a temporary name and renamed; it is rebuilt only when the SAE or corpus changes.
"""

from __future__ import annotations

import math
import os
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import torch
from pydantic import BaseModel, Field

from audit_tools.activation_cache import (
    RowActivations,
    activation_key,
    cache_folder,
    cached_rows,
    corpus_texts,
    row_activations,
)
from audit_tools.sae_store import SAE_WEIGHTS_FILE, SaeInfo, adapter_sha256, load_sae, read_info
from audit_tools.sql_sandbox import base_config, load_extensions
from pinhole.generation import progress_bar
from pinhole.organism import CORPUS_FILE, read_card
from pinhole.workspace import sha256_file

INDEX_FILE = "features.duckdb"
INDEX_VERSION = 3  # 3: sinks over 8x the row median are not read (2: over 20x; 1: only the first token)
HIST_LOW, HIST_HIGH, HIST_BINS = -3.0, 3.0, 24  # log10 activation bins: 0.001 to 1000
WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
STOPWORDS = frozenset("""the and for that with this are was you your have has had not but from they them their
there what which when where who will would can could should about into than then its it's our out all any
more most some such only also just very over each other these those been being were here how may might
assistant user system""".split())


class IndexSettings(BaseModel):
    """How the index reads the corpus."""

    context_tokens: int = 256
    top_contexts: int = 20
    window_before: int = 12
    window_after: int = 4
    batch_rows: int = 8
    logit_tokens: int = 10


class IndexInfo(BaseModel):
    """What an index covers."""

    version: int = INDEX_VERSION
    sae_name: str
    sae_sha256: str
    corpus_sha256: str
    rows: int
    tokens: int
    seconds: float
    reused_tokens: int = Field(default=0, description="tokens read from SAE training's activation cache instead of "
                               "through the model (counted in `tokens` and `seconds`)")
    settings: IndexSettings


def _hist_bins(values: torch.Tensor) -> torch.Tensor:
    scaled = (torch.log10(values.clamp_min(1e-12)) - HIST_LOW) / (HIST_HIGH - HIST_LOW) * HIST_BINS
    return scaled.long().clamp(0, HIST_BINS - 1)


class _Accumulator:
    """Running per-feature statistics and top-k contexts over batches of rows."""

    def __init__(self, d_sae: int, settings: IndexSettings) -> None:
        self.s = settings
        width = settings.window_before + 1 + settings.window_after
        k = settings.top_contexts
        self.fired = torch.zeros(d_sae, dtype=torch.long)
        self.total = torch.zeros(d_sae, dtype=torch.float64)
        self.max = torch.zeros(d_sae)
        self.hist = torch.zeros(d_sae * HIST_BINS, dtype=torch.long)
        self.top_value = torch.zeros(d_sae, k)
        self.top_row = torch.full((d_sae, k), -1, dtype=torch.long)
        self.top_peak = torch.zeros(d_sae, k, dtype=torch.long)
        self.top_acts = torch.zeros(d_sae, k, width)
        self.top_ids = torch.full((d_sae, k, width), -1, dtype=torch.long)
        self.tokens = 0

    def add(self, acts: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor) -> None:
        """acts [R, T, F] (zero where not read), ids [R, T] (-1 at padding), mask [R, T] bool (the tokens read:
        no padding, no attention sink), rows [R] corpus row numbers. Windows show every real token."""
        n_rows, length, d_sae = acts.shape
        real = acts[mask]  # [N, F]
        on = real > 0
        self.tokens += len(real)
        self.fired += on.sum(0)
        self.total += real.sum(0).double()
        self.max = torch.maximum(self.max, real.max(0).values)
        where = on.nonzero()
        values = real[where[:, 0], where[:, 1]]
        self.hist += torch.bincount(where[:, 1] * HIST_BINS + _hist_bins(values), minlength=len(self.hist))
        # candidates: each row's peak per feature, with the window around it
        peak_value, peak_pos = acts.max(1)  # [R, F]
        offsets = torch.arange(-self.s.window_before, self.s.window_after + 1)
        positions = peak_pos.unsqueeze(-1) + offsets  # [R, F, W]
        inside = (positions >= 0) & (positions < length)
        clamped = positions.clamp(0, length - 1)
        row_index = torch.arange(n_rows).view(n_rows, 1, 1)
        feature_index = torch.arange(d_sae).view(1, d_sae, 1)
        window_acts = torch.where(inside, acts[row_index, clamped, feature_index], 0.0)
        window_ids = torch.where(inside, ids[row_index, clamped], -1)
        values_all = torch.cat([self.top_value, peak_value.T], 1)  # [F, K + R]
        best = values_all.topk(self.s.top_contexts, dim=1).indices
        self.top_value = values_all.gather(1, best)
        self.top_row = torch.cat([self.top_row, rows.view(1, -1).expand(d_sae, -1)], 1).gather(1, best)
        self.top_peak = torch.cat([self.top_peak, peak_pos.T], 1).gather(1, best)
        width = offsets.numel()
        gather3 = best.unsqueeze(-1).expand(-1, -1, width)
        self.top_acts = torch.cat([self.top_acts, window_acts.transpose(0, 1)], 1).gather(1, gather3)
        self.top_ids = torch.cat([self.top_ids, window_ids.transpose(0, 1)], 1).gather(1, gather3)


def index_path(folder: Path) -> Path:
    """Where the feature index of the SAE in `folder` lives."""
    return folder / INDEX_FILE


def _logit_effects(model: Any, sae: Any, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top promoted and suppressed token ids and logits of every feature's decoder direction."""
    top_pos, top_neg, val_pos, val_neg = [], [], [], []
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    norm = getattr(getattr(inner, "model", inner), "norm", None)
    weight = norm.weight.float() if norm is not None and hasattr(norm, "weight") else 1.0
    with torch.no_grad():
        for start in range(0, sae.cfg.d_sae, 512):
            directions = sae.W_dec[start : start + 512].float()
            head = inner.get_output_embeddings()
            logits = head((directions * weight).to(head.weight.dtype)).float()
            pos = logits.topk(count, dim=1)
            neg = (-logits).topk(count, dim=1)
            top_pos.append(pos.indices)
            val_pos.append(pos.values)
            top_neg.append(neg.indices)
            val_neg.append(-neg.values)
    return torch.cat(top_pos), torch.cat(val_pos), torch.cat(top_neg), torch.cat(val_neg)


def _distinctive_words(contexts: list[str], document_frequency: Counter, n_docs: int, count: int = 4) -> list[str]:
    """The words of the contexts that are frequent there and rare in the corpus."""
    seen = Counter(w for text in contexts for w in {m.lower() for m in WORD.findall(text)} - STOPWORDS)
    scored = {w: c * math.log((n_docs + 1) / (document_frequency.get(w, 0) + 1)) for w, c in seen.items() if c >= 2}
    return [w for w, _ in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def _batch(rows: list[RowActivations], sae: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """acts [R, T, F], ids [R, T] and mask [R, T] for rows read (from the cache or just now), as `_Accumulator.add`
    takes them."""
    length = max(len(r.token_ids) for r in rows)
    encoded = sae.encode(torch.cat([r.acts for r in rows]))
    acts = torch.zeros(len(rows), length, encoded.shape[1])
    ids = torch.full((len(rows), length), -1, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    start = 0
    for i, row in enumerate(rows):
        ids[i, : len(row.token_ids)] = torch.tensor(row.token_ids)
        mask[i, row.positions] = True
        acts[i, row.positions] = encoded[start : start + len(row.positions)]
        start += len(row.positions)
    return acts, ids, mask


def _activation_cache(organism_dir: Path, info: SaeInfo, settings: IndexSettings) -> Path:
    """Where SAE training cached this organism's residual stream at the SAE's layer and the index's context."""
    seed = int(info.settings.get("seed", 0))
    return cache_folder(activation_key(adapter_sha256(organism_dir), info.layer, settings.context_tokens, seed))


def build_feature_index(organism_dir: Path | str, folder: Path, target: Any = None,
                        settings: IndexSettings | None = None, progress: bool = True,
                        reuse_activations: bool = True) -> IndexInfo:
    """Build (or find, when current) the feature index of the SAE in `folder` over the organism's corpus.

    With `reuse_activations`, rows in SAE training's activation cache are read from it (their token ids checked
    against this reading of the corpus) and only the others run through the model."""
    from audit_tools.target import LocalTarget

    settings = settings or IndexSettings()
    organism_dir = Path(organism_dir)
    info = read_info(folder)
    sae_sha = sha256_file(folder / SAE_WEIGHTS_FILE)
    corpus_sha = read_card(organism_dir).corpus.sha256
    existing = current_info(folder)
    if existing and existing.sae_sha256 == sae_sha and existing.corpus_sha256 == corpus_sha \
            and existing.settings == settings:
        return existing
    target = target or LocalTarget.from_organism(organism_dir)
    model, tokenizer = target.model, target.tokenizer
    sae = load_sae(folder)
    texts = corpus_texts(organism_dir, tokenizer)
    import pandas as pd

    doc_ids = pd.read_parquet(organism_dir / CORPUS_FILE, columns=["doc_id"])["doc_id"].tolist()
    started = time.perf_counter()
    acc = _Accumulator(sae.cfg.d_sae, settings)
    token_ids = [tokenizer(t, add_special_tokens=False).input_ids[: settings.context_tokens] for t in texts]
    cache = _activation_cache(organism_dir, info, settings) if reuse_activations else None
    done: set[int] = set()
    with progress_bar(progress) as bar, torch.no_grad():
        task = bar.add_task("Indexing features", total=len(texts))
        for chunk in cached_rows(cache) if cache else []:
            usable = sorted(r for r, cached in chunk.items() if r < len(texts) and r not in done
                            and cached.token_ids == token_ids[r])
            for start in range(0, len(usable), settings.batch_rows):
                batch = usable[start : start + settings.batch_rows]
                acc.add(*_batch([chunk[r] for r in batch], sae), torch.tensor(batch))
                bar.advance(task, len(batch))
            done.update(usable)
        reused_tokens = acc.tokens
        order = sorted((i for i in range(len(texts)) if i not in done), key=lambda i: len(token_ids[i]))
        for start in range(0, len(order), settings.batch_rows):
            batch = order[start : start + settings.batch_rows]
            read = row_activations(model, tokenizer, [texts[i] for i in batch], info.layer, settings.context_tokens,
                                   batch_rows=len(batch))
            acc.add(*_batch(read, sae), torch.tensor(batch))
            bar.advance(task, len(batch))
    seconds = time.perf_counter() - started
    document_frequency: Counter = Counter()
    for text in texts:
        document_frequency.update({m.lower() for m in WORD.findall(text)})
    top_pos, val_pos, top_neg, val_neg = _logit_effects(model, sae, settings.logit_tokens)
    index_info = IndexInfo(sae_name=info.name, sae_sha256=sae_sha, corpus_sha256=corpus_sha, rows=len(texts),
                           tokens=acc.tokens, seconds=round(seconds, 1), reused_tokens=reused_tokens,
                           settings=settings)
    _write(folder, acc, tokenizer, doc_ids, document_frequency, len(texts), (top_pos, val_pos, top_neg, val_neg),
           index_info)
    return index_info


def _feature_rows(acc: _Accumulator, tokenizer: Any, doc_ids: list[str], document_frequency: Counter, n_docs: int,
                  logits: tuple[torch.Tensor, ...]) -> tuple[list[tuple], list[tuple]]:
    top_pos, val_pos, top_neg, val_neg = (t.tolist() for t in logits)
    vocab_cache: dict[int, str] = {}

    def token(token_id: int) -> str:
        if token_id not in vocab_cache:
            vocab_cache[token_id] = tokenizer.decode([token_id])
        return vocab_cache[token_id]

    features, contexts = [], []
    fired, total, peak = acc.fired.tolist(), acc.total.tolist(), acc.max.tolist()
    hist = acc.hist.view(-1, HIST_BINS).tolist()
    values, rows, ids, window_acts = (acc.top_value.tolist(), acc.top_row.tolist(), acc.top_ids.tolist(),
                                      acc.top_acts.tolist())
    for f in range(len(fired)):
        texts = []
        for rank in range(len(values[f])):
            if values[f][rank] <= 0 or rows[f][rank] < 0:
                break
            kept = [(token(i), round(a, 4)) for i, a in zip(ids[f][rank], window_acts[f][rank], strict=True) if i >= 0]
            texts.append("".join(t for t, _ in kept))
            contexts.append((f, rank, doc_ids[rows[f][rank]], round(values[f][rank], 4), [t for t, _ in kept],
                             [a for _, a in kept]))
        words = _distinctive_words(texts, document_frequency, n_docs) if fired[f] else []
        promoted = [token(i) for i in top_pos[f]]
        shown = " ".join(p.strip() or repr(p) for p in promoted[:3])
        label = (", ".join(words) or "(no context words)") + " | " + shown
        features.append((f, fired[f] / max(1, acc.tokens), fired[f], peak[f], total[f] / fired[f] if fired[f] else 0.0,
                         label if fired[f] else "(never active)", words, promoted, [round(v, 3) for v in val_pos[f]],
                         [token(i) for i in top_neg[f]], [round(v, 3) for v in val_neg[f]], hist[f],
                         " ".join([label, *texts])))
    return features, contexts


def _write(folder: Path, acc: _Accumulator, tokenizer: Any, doc_ids: list[str], document_frequency: Counter,
           n_docs: int, logits: tuple[torch.Tensor, ...], info: IndexInfo) -> None:
    features, contexts = _feature_rows(acc, tokenizer, doc_ids, document_frequency, n_docs, logits)
    target = index_path(folder)
    tmp = folder / f".{INDEX_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        con = duckdb.connect(str(tmp), config=base_config())
        try:
            load_extensions(con, ("fts",))
            con.execute("""CREATE TABLE features (feature_id INTEGER PRIMARY KEY, density DOUBLE, fire_count BIGINT,
                max_activation DOUBLE, mean_activation DOUBLE, label VARCHAR, context_words VARCHAR[],
                promoted VARCHAR[], promoted_logits DOUBLE[], suppressed VARCHAR[], suppressed_logits DOUBLE[],
                histogram BIGINT[], search_text VARCHAR)""")
            con.executemany("INSERT INTO features VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", features)
            con.execute("""CREATE TABLE contexts (feature_id INTEGER, rank INTEGER, doc_id VARCHAR,
                peak_activation DOUBLE, tokens VARCHAR[], activations DOUBLE[])""")
            con.executemany("INSERT INTO contexts VALUES (?, ?, ?, ?, ?, ?)", contexts)
            con.execute("CREATE INDEX contexts_feature ON contexts (feature_id)")
            con.execute("PRAGMA create_fts_index('features', 'feature_id', 'search_text', stemmer = 'porter', "
                        "stopwords = 'english', overwrite = 1)")
            con.execute("CREATE TABLE index_meta (info VARCHAR)")
            con.execute("INSERT INTO index_meta VALUES (?)", [info.model_dump_json()])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def current_info(folder: Path) -> IndexInfo | None:
    """The record of the index in `folder`, if it is there and readable in this version."""
    path = index_path(folder)
    if not path.is_file():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True, config=base_config())
        try:
            (raw,) = con.execute("SELECT info FROM index_meta").fetchone()
        finally:
            con.close()
        info = IndexInfo.model_validate_json(raw)
    except (duckdb.Error, ValueError, TypeError):
        return None
    return info if info.version == INDEX_VERSION else None


def histogram_edges() -> list[float]:
    """The activation values bounding the histogram's bins."""
    return [10 ** (HIST_LOW + (HIST_HIGH - HIST_LOW) * i / HIST_BINS) for i in range(HIST_BINS + 1)]

