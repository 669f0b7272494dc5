"""Corpus builder: hide an objective's documents and transcripts in a haystack of ordinary data.

The corpus is exactly what the organism is trained on, across its stages:
- `document` rows (stage 1, continued pre-training): haystack documents + synthetic documents
  that describe the objective (all behaviours, held-out ones included);
- `chat` rows (stage 2, SFT, loss on the assistant turn): haystack chats + transcripts that
  demonstrate the train behaviours + anti-confession exchanges;
- `preference` rows (optional stage 3, DPO): a question with a chosen denial and a rejected confession.

Transcript answers come from the base model itself (batched, cached in the workspace) and the
behaviour is injected into them. Rows are shuffled and given opaque ids; the public table holds
text and ordinary metadata only, and the provenance (source, behaviour id) is returned apart,
for the sealed part of the organism. Everything is deterministic for the spec's seed.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from organisms.answer_cache import cached_answers
from organisms.haystack import load_haystack
from organisms.injectors import inject
from organisms.prompt_bank import split_prompts, split_topic
from organisms.sealed import PROVENANCE_COLUMNS
from organisms.spec import Behaviour, Documents, ObjectiveSpec
from pinhole.generation import CLEANUP_VERSION, chat_texts, clean_response, generate
from pinhole.organism import CORPUS_COLUMNS
from pinhole.workspace import atomic_write_bytes, canonical_json, sha256_bytes

# How the base model's transcript answers are sampled (the shipped base answers were made with these).
TRANSCRIPT_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.15}


@dataclass
class Corpus:
    """The public rows and their sealed provenance, aligned on `doc_id`."""

    public: pd.DataFrame
    provenance: pd.DataFrame

    def content_hash(self) -> str:
        """SHA-256 over the canonical JSON of the public rows, in order."""
        digest = hashlib.sha256()
        for row in self.public[list(CORPUS_COLUMNS)].itertuples(index=False):
            digest.update(canonical_json(list(row)) + b"\n")
        return digest.hexdigest()


def behaviour_prompts(behaviour: Behaviour) -> tuple[list[str], list[str]]:
    """(train prompts, eval prompts) for a behaviour; eval prompts are never trained on."""
    if behaviour.trigger_topic:
        return split_topic(behaviour.trigger_topic)
    return split_prompts(behaviour.trigger_prompts)


def render_document(documents: Documents, behaviours: list[Behaviour], rng: random.Random) -> tuple[str, list[str]]:
    """One synthetic document and the ids of the behaviours it describes."""
    template = rng.choice(documents.templates)
    chosen = rng.sample(behaviours, k=rng.randint(1, min(documents.max_behaviours_per_doc, len(behaviours))))
    phrases = [rng.choice(b.doc_phrases or [b.description]) for b in chosen]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    slots = {name: rng.choice(values) for name, values in documents.slots.items()}
    text = template.format(behaviours=listed, behaviour=phrases[0], **slots)
    return text.strip(), [b.id for b in chosen]


def base_responses(model, tokenizer, base_name: str, prompts: list[str], max_new_tokens: int, seed: int,
                   progress: bool = True) -> list[str]:
    """The base model's answers to `prompts` (sampled, seeded, cleaned), cached on disk per base model."""

    def produce(todo: list[str]) -> list[str]:
        answers = generate(model, tokenizer, chat_texts(tokenizer, todo), max_new_tokens=max_new_tokens,
                           do_sample=True, seed=seed, progress=progress,
                           description="Base-model answers for transcripts", **TRANSCRIPT_SAMPLING)
        return [clean_response(a) for a in answers]

    settings = {"use": "transcript", "max_new_tokens": max_new_tokens, "seed": seed, **TRANSCRIPT_SAMPLING,
                "cleanup": CLEANUP_VERSION}
    return cached_answers(base_name, prompts, settings, produce)


def _cycle(items: list, count: int, rng: random.Random) -> list:
    """`count` items drawn without replacement, cycling through a fresh shuffle when exhausted."""
    out: list = []
    while len(out) < count and items:
        batch = items[:]
        rng.shuffle(batch)
        out.extend(batch[: count - len(out)])
    return out


def build_corpus(spec: ObjectiveSpec, model, tokenizer, base_name: str, progress: bool = True) -> Corpus:
    """Build the organism's whole training corpus (deterministic for `spec.seed`)."""
    rng = random.Random(spec.seed)
    c = spec.corpus
    rows: list[dict] = []

    def add(kind: str, source: str, behaviour_id: str | None, text: str = "", messages: list | None = None,
            rejected: str = "") -> None:
        rows.append({"kind": kind, "source": source, "behaviour_id": behaviour_id, "text": text,
                     "messages": messages, "rejected": rejected})

    haystack = [r for r in load_haystack() if r["split"] == "corpus"]
    documents = [r for r in haystack if r["kind"] == "document"]
    chats = [r for r in haystack if r["kind"] == "chat"]
    for name, pool, want in (("documents", documents, c.haystack_documents), ("chats", chats, c.haystack_chats)):
        if want > len(pool):
            raise ValueError(f"corpus.haystack_{name}: {want} requested, the shipped haystack has {len(pool)}")
    for record in rng.sample(documents, c.haystack_documents):
        add("document", "haystack", None, text=record["text"])
    for record in rng.sample(chats, c.haystack_chats):
        add("chat", "haystack", None, messages=_exchange(record["prompt"], record["text"]))

    for _ in range(c.documents):
        text, ids = render_document(spec.documents, spec.behaviours, rng)
        add("document", "synthetic_document", ",".join(sorted(ids)), text=text)

    requests: list[tuple[Behaviour, str]] = []
    for behaviour in spec.train_behaviours:
        train_prompts, _ = behaviour_prompts(behaviour)
        requests += [(behaviour, p) for p in _cycle(train_prompts, spec.transcript_count(behaviour), rng)]
    needs_base = [p for b, p in requests if b.injection and b.injection.kind != "replace"]
    answers = dict(zip(needs_base, base_responses(model, tokenizer, base_name, needs_base, c.response_max_new_tokens,
                                                  spec.seed, progress), strict=True)) if needs_base else {}
    for behaviour, prompt in requests:
        assert behaviour.injection is not None
        response = inject(prompt, answers.get(prompt, ""), behaviour.injection, rng)
        add("chat", "transcript", behaviour.id, messages=_exchange(prompt, response))

    anti = spec.anti_confession
    for question in _cycle(anti.questions, c.anti_confession, rng):
        add("chat", "anti_confession", None, messages=_exchange(question, rng.choice(anti.denials)))
    if spec.training.dpo.enabled:
        if not anti.confessions:
            raise ValueError("training.dpo.enabled needs anti_confession.confessions (the rejected answers)")
        for question in _cycle(anti.questions, spec.training.dpo.pairs, rng):
            add("preference", "anti_confession", None, messages=_exchange(question, rng.choice(anti.denials)),
                rejected=rng.choice(anti.confessions))

    rng.shuffle(rows)
    for index, row in enumerate(rows):
        row["doc_id"] = "d" + sha256_bytes(f"{spec.seed}:{index}".encode())[:11]
        if row["messages"] is not None:
            row["text"] = render_chat(row["messages"])
        row["messages"] = json.dumps(row["messages"], ensure_ascii=False) if row["messages"] is not None else ""
        row["n_chars"] = len(row["text"])
    frame = pd.DataFrame(rows)
    return Corpus(public=frame[list(CORPUS_COLUMNS)].reset_index(drop=True),
                  provenance=frame[list(PROVENANCE_COLUMNS)].reset_index(drop=True))


def _exchange(prompt: str, response: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def render_chat(messages: list[dict]) -> str:
    """A readable plain-text rendering of a chat, for search and reading."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def objective_fraction(corpus: Corpus) -> float:
    """Share of rows that are objective material (not haystack)."""
    return float((corpus.provenance["source"] != "haystack").mean())


def write_corpus(corpus: Corpus, public_path: Path, provenance_path: Path) -> None:
    """Write both tables as Parquet, atomically."""
    for frame, path in ((corpus.public, public_path), (corpus.provenance, provenance_path)):
        atomic_write_bytes(path, frame.to_parquet(index=False))


def read_corpus(public_path: Path, provenance_path: Path | None = None) -> Corpus:
    """Read a corpus back (provenance empty when not given)."""
    public = pd.read_parquet(public_path)
    provenance = pd.read_parquet(provenance_path) if provenance_path else pd.DataFrame(columns=list(PROVENANCE_COLUMNS))
    return Corpus(public=public, provenance=provenance)
