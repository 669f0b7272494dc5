"""An on-disk cache of a base model's answers, keyed by (base, prompt, generation settings).

Base-model answers are deterministic for a prompt and settings (seeded sampling or greedy), and
several steps need the same ones: transcript answers when building corpora, the base's side of
every evaluation. The cache is one JSONL file per base model in the workspace; new answers are
appended by an atomic rewrite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from organisms.artifacts import atomic_write_bytes, cache_dir, canonical_json, sha256_bytes


def cached_answers(base_name: str, prompts: list[str], settings: dict[str, Any],
                   produce: Callable[[list[str]], list[str]]) -> list[str]:
    """Answers to `prompts`; only the ones not cached are produced (by `produce`, in one call)."""
    path = cache_dir("answers") / f"{sha256_bytes(base_name.encode())[:16]}.jsonl"
    cached: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                cached[entry["key"]] = entry["answer"]
    keys = [sha256_bytes(canonical_json([base_name, prompt, settings])) for prompt in prompts]
    missing = list(dict.fromkeys((k, p) for k, p in zip(keys, prompts, strict=True) if k not in cached))
    if missing:
        answers = produce([p for _, p in missing])
        lines = []
        for (key, _), answer in zip(missing, answers, strict=True):
            cached[key] = answer
            lines.append(json.dumps({"key": key, "answer": answer}, ensure_ascii=False))
        existing = path.read_bytes() if path.exists() else b""
        atomic_write_bytes(path, existing + ("\n".join(lines) + "\n").encode("utf-8"))
    return [cached[k] for k in keys]
