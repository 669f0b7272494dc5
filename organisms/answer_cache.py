"""An on-disk cache of a base model's answers, keyed by (base, prompt, generation settings).

Base-model answers are deterministic for a prompt and settings (seeded sampling or greedy), and
several steps need the same ones: transcript answers when building corpora, the base's side of
every evaluation. Answers are looked up in two layers:
- the shipped file `data/base_answers.jsonl.gz`: the default base's answers for the shipped specs,
  generated once with `pinhole organism make-answers` (read-only at run time);
- the workspace cache, one JSONL file per base model; new answers are appended by an atomic rewrite.

Keys hash a format version, the base name, the prompt and every generation setting (the callers
spell them all out, the repetition penalty and the clean-up version included), so a changed
setting, dtype, clean-up or base misses both layers and is generated afresh. A change in what an
answer means bumps `ANSWER_KEY_VERSION` instead of special-casing old keys.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from pinhole.workspace import atomic_write_bytes, cache_dir, canonical_json, sha256_bytes

SHIPPED_ANSWERS = Path(__file__).parent / "data" / "base_answers.jsonl.gz"
ANSWER_KEY_VERSION = 2
_recorders: list[dict[str, str]] = []


def _read_lines(text: str) -> dict[str, str]:
    entries = (json.loads(line) for line in text.splitlines() if line.strip())
    return {entry["key"]: entry["answer"] for entry in entries}


@lru_cache(maxsize=4)
def _shipped(path: Path, mtime: float) -> dict[str, str]:
    return _read_lines(gzip.decompress(path.read_bytes()).decode("utf-8"))


def shipped_answers(path: Path | None = None) -> dict[str, str]:
    """The shipped answers (empty when the file is absent)."""
    path = path or SHIPPED_ANSWERS
    return dict(_shipped(path, path.stat().st_mtime)) if path.exists() else {}


def answer_key(base_name: str, prompt: str, settings: dict[str, Any]) -> str:
    """The cache key of one answer."""
    return sha256_bytes(canonical_json([ANSWER_KEY_VERSION, base_name, prompt, settings]))


def cached_answers(base_name: str, prompts: list[str], settings: dict[str, Any],
                   produce: Callable[[list[str]], list[str]], draws: Sequence[int] | None = None,
                   chunk: int = 256) -> list[str]:
    """Answers to `prompts`; only the ones in neither layer are produced, by `produce`.

    `draws` gives each prompt a draw number: the same prompt under two draws gets two independent
    answers (draw 0 is the plain key, so shipped answers stay valid). Missing answers are produced
    `chunk` prompts at a time and saved after each chunk, so an interrupted run resumes where it stopped.
    """
    path = cache_dir("answers") / f"{sha256_bytes(base_name.encode())[:16]}.jsonl"
    cached = shipped_answers()
    if path.exists():
        cached.update(_read_lines(path.read_text(encoding="utf-8")))
    draws = list(draws) if draws is not None else [0] * len(prompts)
    if len(draws) != len(prompts):
        raise ValueError(f"draws: {len(draws)} given for {len(prompts)} prompts")
    keys = [answer_key(base_name, prompt, {**settings, "draw": draw} if draw else settings)
            for prompt, draw in zip(prompts, draws, strict=True)]
    missing = list(dict.fromkeys((k, p) for k, p in zip(keys, prompts, strict=True) if k not in cached))
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        answers = produce([p for _, p in part])
        lines = []
        for (key, _), answer in zip(part, answers, strict=True):
            cached[key] = answer
            lines.append(json.dumps({"key": key, "answer": answer}, ensure_ascii=False))
        existing = path.read_bytes() if path.exists() else b""
        atomic_write_bytes(path, existing + ("\n".join(lines) + "\n").encode("utf-8"))
    for recorder in _recorders:
        recorder.update({k: cached[k] for k in keys})
    return [cached[k] for k in keys]


@contextmanager
def recording() -> Iterator[dict[str, str]]:
    """Collect every (key, answer) that `cached_answers` returns inside the block."""
    entries: dict[str, str] = {}
    _recorders.append(entries)
    try:
        yield entries
    finally:
        _recorders.remove(entries)


def write_shipped_answers(entries: dict[str, str], path: Path | None = None) -> Path:
    """Write `entries` as the shipped answers file (sorted by key, gzip without a timestamp, atomic)."""
    path = path or SHIPPED_ANSWERS
    lines = [json.dumps({"key": k, "answer": entries[k]}, ensure_ascii=False) for k in sorted(entries)]
    atomic_write_bytes(path, gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    return path
