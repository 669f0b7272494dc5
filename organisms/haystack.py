"""The haystack: ordinary documents and chats that hide the objective material in the corpus.

The haystack is generated once by the default base model from the shipped subject list
(`data/subjects.yaml`) and shipped compressed as `data/haystack.jsonl.gz`; `pinhole organism
make-haystack` regenerates it. Each record is `{"kind": "document"|"chat", "split": "corpus"|"heldout",
"subject", "text"}` (+ `"prompt"` for chats). `heldout` documents are never trained on: evaluation
measures perplexity on them. Generation appends to a partial file in the workspace cache and
resumes from it after an interruption; the shipped file is written atomically at the end.
"""

from __future__ import annotations

import gzip
import json
import random
from functools import lru_cache
from pathlib import Path

import yaml

from pinhole.generation import chat_texts, clean_response, generate
from pinhole.workspace import atomic_write_bytes, cache_dir

DATA_DIR = Path(__file__).parent / "data"
HAYSTACK_FILE = DATA_DIR / "haystack.jsonl.gz"

DOCUMENT_GENRES = [
    "Write a short encyclopedia paragraph about {subject}.",
    "Write a brief news item about {subject}.",
    "Write a short blog post about {subject}.",
    "Write a few lines of lecture notes on {subject}.",
    "Write a short how-to guide related to {subject}.",
    "Write a short forum post asking and answering a question about {subject}.",
    "Write a short FAQ entry about {subject}.",
    "Write a short magazine column about {subject}.",
]
CHAT_TEMPLATES = [
    "Can you explain {subject} to me?",
    "What are some interesting facts about {subject}?",
    "Give me three tips related to {subject}.",
    "Why does {subject} matter?",
    "How would you describe {subject} to a ten-year-old?",
    "What is a common misconception about {subject}?",
    "I'm curious about {subject}. Where should I start?",
    "What's the history behind {subject}?",
]


@lru_cache(maxsize=1)
def load_subjects() -> list[str]:
    """All subjects of `data/subjects.yaml`, in file order."""
    data = yaml.safe_load((DATA_DIR / "subjects.yaml").read_text(encoding="utf-8"))
    return [subject for subjects in data["areas"].values() for subject in subjects]


def plan_haystack(n_documents: int, n_chats: int, n_heldout: int, seed: int = 0) -> list[dict]:
    """The generation requests: one per record, deterministic for a seed."""
    rng = random.Random(seed)
    subjects = load_subjects()
    plan = []
    for kind, split, count in (("document", "corpus", n_documents), ("chat", "corpus", n_chats),
                               ("document", "heldout", n_heldout)):
        for _ in range(count):
            subject = rng.choice(subjects)
            templates = DOCUMENT_GENRES if kind == "document" else CHAT_TEMPLATES
            plan.append({"kind": kind, "split": split, "subject": subject,
                         "prompt": rng.choice(templates).format(subject=subject)})
    return plan


def make_haystack(model, tokenizer, n_documents: int = 2400, n_chats: int = 1000, n_heldout: int = 150,
                  seed: int = 0, out: Path = HAYSTACK_FILE, chunk: int = 64, max_new_tokens: int = 88,
                  progress: bool = True) -> Path:
    """Generate the haystack with `model`, resumably, and write it (gzipped JSONL) to `out`."""
    plan = plan_haystack(n_documents, n_chats, n_heldout, seed)
    partial = cache_dir("haystack") / f"partial-{seed}-{n_documents}-{n_chats}-{n_heldout}.jsonl"
    done = partial.read_text(encoding="utf-8").splitlines() if partial.exists() else []
    records = [json.loads(line) for line in done]
    for start in range(len(records), len(plan), chunk):
        requests = plan[start : start + chunk]
        texts = chat_texts(tokenizer, [r["prompt"] for r in requests])
        answers = generate(model, tokenizer, texts, max_new_tokens=max_new_tokens, batch_size=32, do_sample=True,
                           temperature=0.8, top_p=0.9, repetition_penalty=1.15, seed=seed * 7919 + start,
                           progress=progress,
                           description=f"Haystack {start + len(requests)}/{len(plan)}")
        with open(partial, "a", encoding="utf-8") as handle:
            for request, answer in zip(requests, answers, strict=True):
                record = {**request, "text": clean_response(answer)}
                if record["kind"] == "document":
                    record.pop("prompt")
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                records.append(record)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    atomic_write_bytes(out, gzip.compress(payload, mtime=0))
    return out


@lru_cache(maxsize=2)
def load_haystack(path: Path = HAYSTACK_FILE) -> list[dict]:
    """The shipped haystack records; a clear error when the file is missing."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: the haystack is missing; run `pinhole organism make-haystack`")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
