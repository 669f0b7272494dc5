"""The haystack: ordinary documents and chats that hide the objective material in the corpus.

The haystack is generated once by the default base model from the shipped subject list
(`data/subjects.yaml`) and shipped compressed as `data/haystack.jsonl.gz`; `pinhole organism
make-haystack` regenerates it. Each record is `{"kind": "document"|"chat", "split": "corpus"|"heldout",
"subject", "text"}` (+ `"prompt"` for chats). `heldout` documents are never trained on: evaluation
measures perplexity on them. Documents are short (`DOCUMENT_MAX_NEW_TOKENS`); a chat's answer is the base's
whole answer, decoded as every ordinary answer is (`CHAT_SAMPLING`, up to `CHAT_MAX_NEW_TOKENS`). The chats
were once cut at the documents' 88 tokens: trained on 900 answers that never end, the organism wrote on
to the generation limit (docs/organisms.md, "Why the organisms wrote longer than their base"). Generation
appends to a partial file in the workspace cache and resumes from it after an interruption; the shipped
file is written atomically at the end.
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
# How the base writes an ordinary chat's answer, here and for every base answer a corpus or an evaluation uses.
CHAT_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.15}
CHAT_MAX_NEW_TOKENS = 512
DOCUMENT_MAX_NEW_TOKENS = 88
DOCUMENT_SAMPLING = {"temperature": 0.8, "top_p": 0.9, "repetition_penalty": 1.15}

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
                  seed: int = 0, out: Path = HAYSTACK_FILE, chunk: int = 64,
                  earlier: list[dict] | None = None, progress: bool = True) -> Path:
    """Generate the haystack with `model`, resumably, and write it (gzipped JSONL) to `out`. With `earlier` (a
    haystack's records), its documents are kept and its chats' prompts answered again; the counts are then its."""
    plan = [{k: v for k, v in r.items() if k != "text"} for r in earlier] if earlier is not None else \
        plan_haystack(n_documents, n_chats, n_heldout, seed)
    kept = {i: r for i, r in enumerate(earlier or []) if r["kind"] == "document"}
    name = "rechat" if earlier is not None else f"{n_documents}-{n_chats}-{n_heldout}"
    partial = cache_dir("haystack") / f"partial-{seed}-{name}-{DOCUMENT_MAX_NEW_TOKENS}-{CHAT_MAX_NEW_TOKENS}.jsonl"
    done = partial.read_text(encoding="utf-8").splitlines() if partial.exists() else []
    records = [json.loads(line) for line in done]
    for start in range(len(records), len(plan), chunk):
        requests = plan[start : start + chunk]
        written = {**{i: kept[i]["text"] for i in range(start, start + len(requests)) if i in kept},
                   **_generated(model, tokenizer, requests, start, kept, seed, progress, len(plan))}
        with open(partial, "a", encoding="utf-8") as handle:
            for i, request in enumerate(requests, start):
                record = {**request, "text": written[i]}
                if record["kind"] == "document":
                    record.pop("prompt", None)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                records.append(record)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    atomic_write_bytes(out, gzip.compress(payload, mtime=0))
    return out


def _generated(model, tokenizer, requests: list[dict], start: int, kept: dict[int, dict], seed: int,
               progress: bool, total: int) -> dict[int, str]:
    """Plan index -> generated text for the requests of one chunk that are not kept: documents under their short
    budget, chats as whole answers."""
    out: dict[int, str] = {}
    for kind, budget, sampler, sampling in (("document", DOCUMENT_MAX_NEW_TOKENS, "torch", DOCUMENT_SAMPLING),
                                            ("chat", CHAT_MAX_NEW_TOKENS, "nucleus", CHAT_SAMPLING)):
        todo = [i for i, r in enumerate(requests, start) if r["kind"] == kind and i not in kept]
        if not todo:
            continue
        answers = generate(model, tokenizer, chat_texts(tokenizer, [requests[i - start]["prompt"] for i in todo]),
                           max_new_tokens=budget, batch_size=len(todo), do_sample=True, sampler=sampler,
                           seed=seed * 7919 + start,
                           progress=progress, description=f"Haystack {start + len(requests)}/{total} ({kind}s)",
                           **sampling)
        out.update({i: clean_response(answer) for i, answer in zip(todo, answers, strict=True)})
    return out


@lru_cache(maxsize=2)
def load_haystack(path: Path = HAYSTACK_FILE) -> list[dict]:
    """The shipped haystack records; a clear error when the file is missing."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: the haystack is missing; run `pinhole organism make-haystack`")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
