"""The public corpus's residual stream after one layer, cached on disk once and read by SAE training and the index.

Rows (documents as text, chats through the chat template) are read in the order given, in chunks of
64; each chunk is one safetensors file in the workspace cache holding, for its rows, the residual stream
after the layer at every readable token (`residual.readable_positions`: real tokens but the attention
sinks) and what places each vector: the rows' corpus numbers, their token ids and each vector's position.
A killed run keeps its finished chunks.

SAE training reads the vectors alone (`cache_activations`); the feature index reads whole rows back
(`cached_rows`) and runs the model only on the rows the cache lacks, after checking each cached row's token
ids against its own reading of the corpus. Chunks written before the rows were recorded (before 2026-12-06)
hold the vectors alone: the index reads those rows through the model, and the next training to read such a
chunk computes it again in the present form.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch

from audit_tools.residual import readable_positions, residual_after
from pinhole.generation import progress_bar
from pinhole.workspace import workspace

ROWS_PER_CHUNK = 64
POSITIONS_READ = "no-sinks-v3"  # which tokens the cache holds (v1: all but the first; v2: sinks over 20x)
CACHE_PARTS = ("cache", "sae-activations")


class RowActivations(NamedTuple):
    """One corpus row as the cache holds it."""

    token_ids: list[int]  # the row's tokens as read (truncated to the context)
    positions: torch.Tensor  # [n] int64: where the readable tokens are in the row
    acts: torch.Tensor  # [n, d_model] float32: the residual stream after the layer at those tokens


def activation_key(adapter_sha: str, layer: int, context_tokens: int, seed: int) -> str:
    """The cache key of one reading of the corpus: organism weights, layer, context and the row order's seed."""
    settings = {"adapter": adapter_sha, "layer": layer, "context_tokens": context_tokens, "seed": seed,
                "rows_per_chunk": ROWS_PER_CHUNK, "positions": POSITIONS_READ}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cache_folder(key: str) -> Path:
    """Where the chunks of `key` live (not created: a reader must not leave empty folders behind)."""
    return workspace().joinpath(*CACHE_PARTS, key)


def corpus_texts(organism_dir: Path | str, tokenizer: Any) -> list[str]:
    """The public corpus as the model reads it: documents as text, chats and preferences through the chat template."""
    import pandas as pd

    from pinhole.organism import CORPUS_FILE

    path = Path(organism_dir) / CORPUS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {organism_dir} an organism directory?")
    frame = pd.read_parquet(path, columns=["kind", "text", "messages"])
    texts = []
    for kind, text, messages in frame.itertuples(index=False):
        if kind == "document" or not messages:
            texts.append(text)
        else:
            texts.append(tokenizer.apply_chat_template(json.loads(messages), tokenize=False))
    return texts


@torch.no_grad()
def row_activations(model: Any, tokenizer: Any, texts: list[str], layer: int, context_tokens: int,
                    batch_rows: int = 8) -> list[RowActivations]:
    """Per text, its tokens and the residual stream after `layer` at its readable tokens (no attention sink)."""
    out: list[RowActivations | None] = [None] * len(texts)
    lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    for start in range(0, len(order), batch_rows):
        batch = order[start : start + batch_rows]
        encoded = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, padding_side="right",
                            truncation=True, max_length=context_tokens, add_special_tokens=False)
        hidden = residual_after(model, layer, dict(encoded)).float()
        keep = readable_positions(hidden, encoded.attention_mask)
        for row, i in enumerate(batch):
            n_real = int(encoded.attention_mask[row].sum())
            out[i] = RowActivations(encoded.input_ids[row, :n_real].tolist(), keep[row].nonzero()[:, 0],
                                    hidden[row][keep[row]].clone())
    assert all(r is not None for r in out)  # every text is in exactly one batch
    return out  # type: ignore[return-value]


def _chunk_tensors(rows: list[int], per_row: list[RowActivations]) -> dict[str, torch.Tensor]:
    def cat(parts: list[torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts) if parts else empty

    return {"acts": cat([r.acts for r in per_row], torch.empty(0, 0)).contiguous(),
            "rows": torch.tensor(rows, dtype=torch.int64),
            "counts": torch.tensor([len(r.positions) for r in per_row], dtype=torch.int64),
            "positions": cat([r.positions for r in per_row], torch.empty(0, dtype=torch.int64)).to(torch.int32),
            "lengths": torch.tensor([len(r.token_ids) for r in per_row], dtype=torch.int64),
            "token_ids": torch.tensor([t for r in per_row for t in r.token_ids], dtype=torch.int32)}


def cache_activations(model: Any, tokenizer: Any, texts: list[str], rows: list[int], layer: int,
                      context_tokens: int, wanted_tokens: int, folder: Path,
                      progress: bool = True) -> tuple[torch.Tensor, float]:
    """The first `wanted_tokens` activations of `rows` read in order, [n, d_model], computing the chunks not yet
    in `folder`; returns (activations, seconds spent computing)."""
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    chunks: list[torch.Tensor] = []
    total, spent = 0, 0.0
    n_chunks = -(-len(rows) // ROWS_PER_CHUNK)
    with progress_bar(progress) as bar:
        task = bar.add_task("Caching activations", total=wanted_tokens)
        for index in range(n_chunks):
            if total >= wanted_tokens:
                break
            path = folder / f"chunk-{index:05d}.safetensors"
            kept = load_file(str(path)) if path.is_file() else {}
            if "rows" in kept:
                acts = kept["acts"]
            else:  # not computed yet, or an older chunk that cannot be placed in its rows: (re)computed
                started = time.perf_counter()
                chunk_rows = rows[index * ROWS_PER_CHUNK : (index + 1) * ROWS_PER_CHUNK]
                per_row = row_activations(model, tokenizer, [texts[i] for i in chunk_rows], layer, context_tokens)
                tensors = _chunk_tensors(chunk_rows, per_row)
                tmp = folder / f".chunk-{index:05d}.tmp"
                save_file(tensors, str(tmp))
                tmp.replace(path)
                acts = tensors["acts"]
                spent += time.perf_counter() - started
            chunks.append(acts)
            total += len(acts)
            bar.update(task, completed=min(total, wanted_tokens))
    if not chunks:
        raise ValueError("the corpus has no tokens to train on")
    return torch.cat(chunks)[:wanted_tokens], spent


def cached_rows(folder: Path) -> Iterator[dict[int, RowActivations]]:
    """Per chunk in `folder` that records its rows, {corpus row: its cached reading}; nothing for a missing folder."""
    from safetensors.torch import load_file

    for path in sorted(folder.glob("chunk-*.safetensors")) if folder.is_dir() else []:
        chunk = load_file(str(path))
        if "rows" not in chunk:
            continue  # vectors alone (an older chunk): its rows go through the model
        counts, lengths = chunk["counts"].tolist(), chunk["lengths"].tolist()
        act_starts = [0, *torch.tensor(counts).cumsum(0).tolist()]
        id_starts = [0, *torch.tensor(lengths).cumsum(0).tolist()]
        yield {row: RowActivations(chunk["token_ids"][id_starts[i] : id_starts[i + 1]].tolist(),
                                   chunk["positions"][act_starts[i] : act_starts[i + 1]].long(),
                                   chunk["acts"][act_starts[i] : act_starts[i + 1]])
               for i, row in enumerate(chunk["rows"].tolist())}
