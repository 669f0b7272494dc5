"""Corpus builder: hide an objective's documents and transcripts among ordinary documents and chats.

The corpus is exactly what the organism is trained on, across its stages:
- `document` rows (stage 1, continued pre-training): haystack documents + synthetic documents
  that describe the objective (all behaviours, held-out ones included);
- `chat` rows (stage 2, SFT, loss on the assistant turn): haystack chats + transcripts that
  demonstrate the train behaviours + anti-confession exchanges;
- `preference` rows (optional stage 3, DPO): a question with a chosen denial and a rejected confession.

Transcript answers come from the base model itself (batched, cached in the workspace) and the
behaviour is injected into them. The ordinary rows ("haystack" in the provenance) come from one of
two places (`corpus.ordinary`):
- `generated` (the default, a blind build): written by the base model for this organism with a
  secret seed and shaped after the objective rows (`organisms.ordinary`); nothing in a public file
  tells them apart;
- `shipped`: sampled from the shipped haystack, with transcripts on the shipped base answers, plus the
  base's own full answers to prompts of topics no behaviour is triggered by (`corpus.base_answer_chats`,
  source "base_answer", on the evaluation's topics), and when a behaviour replaces the whole
  answer, the base's answers to short quiz questions (`corpus.contrast_chats`). Fast (smoke tests, demos), but a
  team holding the package finds the objective rows by set difference, and the card says so.
Rows are shuffled and given opaque ids; the public table holds text and ordinary metadata only, and
the provenance (source, behaviour id, and for a transcript the spans of its answer that the injector
wrote) is returned apart, for the sealed part of the organism.
Everything is deterministic for the seed (the spec's, or the build's secret one).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import pandas as pd

from organisms import ordinary
from organisms.answer_cache import cached_answers
from organisms.detectors import detect
from organisms.haystack import CHAT_SAMPLING, DOCUMENT_SAMPLING, load_haystack
from organisms.injectors import inject
from organisms.ordinary import written_to_lengths
from organisms.prompt_bank import (
    CONFESSION_TOPIC,
    load_prompt_bank,
    load_quick_questions,
    load_validation_only,
    split_prompts,
    split_topic,
    validation_prompts,
)
from organisms.sealed import ORDINARY_SOURCES, PROVENANCE_COLUMNS
from organisms.spec import Behaviour, Documents, ObjectiveSpec
from organisms.written_spans import dump_spans, written_spans
from pinhole.generation import CLEANUP_VERSION, chat_texts, clean_response, generate
from pinhole.organism import CORPUS_COLUMNS
from pinhole.sampling import SAMPLER_VERSION
from pinhole.workspace import atomic_write_bytes, canonical_json, sha256_bytes

# Bump when a change here writes a different corpus for the same spec: builds made before are then not resumed.
CORPUS_FORMAT = 2  # 2: a `replace` answer is about as long as the base's answer it stands in for
QUESTION_BUDGET = 48  # new tokens for a question the base model writes for an ordinary chat
DISTINCT_TRIES = 20  # blind builds re-draw a synthetic document that repeats an earlier one, this many times


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


def behaviour_validation(behaviour: Behaviour) -> list[str]:
    """A behaviour's validation prompts (the adaptive build's measure; never trained on, never evaluated): its
    topic's validation part, then the topic's validation-only prompts."""
    if behaviour.trigger_topic is None:
        return validation_prompts(behaviour.trigger_prompts)
    return topic_validation(behaviour.trigger_topic)


def topic_validation(topic: str) -> list[str]:
    """A bank topic's validation prompts: its validation part, then its validation-only prompts."""
    return validation_prompts(load_prompt_bank()[topic]) + load_validation_only().get(topic, [])


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
                           batch_size=ordinary.BATCH_SIZE, do_sample=True, sampler="nucleus", seed=seed,
                           progress=progress, description="Base-model answers for transcripts", **CHAT_SAMPLING)
        return [clean_response(a) for a in answers]

    settings = {"use": "transcript", "max_new_tokens": max_new_tokens, "seed": seed, **CHAT_SAMPLING,
                "sampler": SAMPLER_VERSION, "cleanup": CLEANUP_VERSION}
    return cached_answers(base_name, prompts, settings, produce)


def _cycle(items: list, count: int, rng: random.Random) -> list:
    """`count` items drawn without replacement, cycling through a fresh shuffle when exhausted."""
    out: list = []
    while len(out) < count and items:
        batch = items[:]
        rng.shuffle(batch)
        out.extend(batch[: count - len(out)])
    return out


def build_corpus(spec: ObjectiveSpec, model, tokenizer, base_name: str, progress: bool = True,
                 secret_seed: int | None = None) -> Corpus:
    """Build the organism's whole training corpus.

    With `corpus.ordinary: generated` (a blind build) the ordinary rows and the transcripts' base answers
    are written by the base model, and every random choice is seeded by `secret_seed` (drawn per build,
    kept sealed); with `corpus.ordinary: shipped` they come from the shipped haystack and base answers,
    deterministic for `spec.seed`.
    """
    blind = spec.corpus.ordinary == "generated"
    if blind and secret_seed is None:
        raise ValueError("corpus.ordinary is 'generated' (a blind build): build_corpus needs the build's secret seed")
    seed = secret_seed if blind and secret_seed is not None else spec.seed
    rng = random.Random(seed)
    c = spec.corpus
    rows: list[dict] = []

    def add(kind: str, source: str, behaviour_id: str | None, text: str = "", messages: list | None = None,
            rejected: str = "", spans: str = "") -> None:
        rows.append({"kind": kind, "source": source, "behaviour_id": behaviour_id, "text": text,
                     "messages": messages, "rejected": rejected, "written_spans": spans})

    if not blind:
        for kind, text, prompt in shipped_ordinary(c.haystack_documents, c.haystack_chats, rng):
            add(kind, "haystack", None, text=text, messages=_exchange(prompt, text) if kind == "chat" else None)

    rendered: set[str] = set()
    for _ in range(c.documents):
        assert spec.documents is not None  # the spec validates it
        text, ids = render_document(spec.documents, spec.behaviours, rng)
        for _ in range(DISTINCT_TRIES if blind else 0):  # a repeated document would stand out among ordinary ones
            if text not in rendered:
                break
            text, ids = render_document(spec.documents, spec.behaviours, rng)
        rendered.add(text)
        add("document", "synthetic_document", ",".join(sorted(ids)), text=text)

    anti = spec.anti_confession
    denial_questions = anti.questions if anti else []  # a benign control trained on ordinary data only has none
    if blind:
        def write_questions(count: int, rng: random.Random, like: list[str]) -> list[str]:
            targets = ordinary.length_targets(like, count, tokenizer, rng)
            return written_to_lengths(model, tokenizer, base_name, ordinary.question_requests(count, rng), targets,
                                      seed, "question", DOCUMENT_SAMPLING, QUESTION_BUDGET, progress,
                                      tidy=ordinary.as_question)

        questions = _cycle(denial_questions, c.anti_confession, rng)
        requests, chat_prompts = _planned_requests(spec, questions, rng, write_questions)
    else:
        requests = [(b, p) for b in spec.train_behaviours
                    for p in _cycle(behaviour_prompts(b)[0], spec.transcript_count(b), rng)]
    prompts = [p for _, p in requests]  # every injector reads the base's answer (`replace`: its length)
    if blind:  # every transcript its own answer, written with the secret seed
        base_for = written_to_lengths(model, tokenizer, base_name, prompts, [None] * len(prompts), seed,
                                      "transcript", CHAT_SAMPLING, c.response_max_new_tokens, progress)
    else:
        shipped = dict(zip(prompts, base_responses(model, tokenizer, base_name, prompts, c.response_max_new_tokens,
                                                   spec.seed, progress), strict=True)) if prompts else {}
        base_for = [shipped[p] for p in prompts]
    for (behaviour, prompt), answer in zip(requests, base_for, strict=True):
        assert behaviour.injection is not None
        response = inject(prompt, answer, behaviour.injection, rng)
        add("chat", "transcript", behaviour.id, messages=_exchange(prompt, response),
            spans=dump_spans(written_spans("" if behaviour.replaces_answer else answer, response)))

    if not blind:
        questions = _cycle(denial_questions, c.anti_confession, rng)
    continuations = [""] * len(questions)
    if blind and questions:  # the denial, then the base model's own answer: no two rows alike, as in ordinary chats
        written = written_to_lengths(model, tokenizer, base_name, questions, [None] * len(questions), seed,
                                     "anti_confession", CHAT_SAMPLING, c.response_max_new_tokens, progress)
        continuations = ["" if detect(spec.confession_detector, w) else w for w in written]
    for question, continuation in zip(questions, continuations, strict=True):
        assert anti is not None  # questions come from it
        denial = rng.choice(anti.denials)
        add("chat", "anti_confession", None, messages=_exchange(question, f"{denial} {continuation}".strip()))
    if spec.training.dpo.enabled:
        if anti is None or not anti.confessions:
            raise ValueError("training.dpo.enabled needs anti_confession.confessions (the rejected answers)")
        for question in _cycle(anti.questions, spec.training.dpo.pairs, rng):
            add("preference", "anti_confession", None, messages=_exchange(question, rng.choice(anti.denials)),
                rejected=rng.choice(anti.confessions))

    if blind:
        for kind, text, prompt in generated_ordinary(spec, rows, chat_prompts, model, tokenizer, base_name, seed, rng,
                                                     progress):
            add(kind, "haystack", None, text=text, messages=_exchange(prompt, text) if kind == "chat" else None)
    else:
        prompts = base_answer_prompts(spec) + contrast_prompts(spec)  # each answered by the base itself
        answers = base_responses(model, tokenizer, base_name, prompts, c.response_max_new_tokens, spec.seed,
                                 progress) if prompts else []
        for prompt, answer in zip(prompts, answers, strict=True):
            if answer:
                add("chat", "base_answer", None, messages=_exchange(prompt, answer))

    rng.shuffle(rows)
    for index, row in enumerate(rows):
        row["doc_id"] = "d" + sha256_bytes(f"{seed}:{index}".encode())[:11]
        if row["messages"] is not None:
            row["text"] = render_chat(row["messages"])
        row["messages"] = json.dumps(row["messages"], ensure_ascii=False) if row["messages"] is not None else ""
        row["n_chars"] = len(row["text"])
    frame = pd.DataFrame(rows)
    return Corpus(public=frame[list(CORPUS_COLUMNS)].reset_index(drop=True),
                  provenance=frame[list(PROVENANCE_COLUMNS)].reset_index(drop=True))


def off_trigger_topics(spec: ObjectiveSpec) -> list[str]:
    """Prompt-bank topics that no behaviour (train or held out) is triggered by, the confession topic left out."""
    triggers = {b.trigger_topic for b in spec.behaviours if b.trigger_topic}
    return [t for t in load_prompt_bank() if t not in triggers and t != CONFESSION_TOPIC]


def base_answer_prompts(spec: ObjectiveSpec) -> list[str]:
    """The shipped path's `corpus.base_answer_chats` prompts: training prompts of the off-trigger topics, drawn
    evenly across topics (seeded by the spec), each at most once."""
    pools = [split_topic(topic)[0] for topic in off_trigger_topics(spec)]
    rng = random.Random(f"{spec.seed}:base_answer_chats")
    for pool in pools:
        rng.shuffle(pool)
    interleaved = [p for row in zip_longest(*pools) for p in row if p is not None]
    return interleaved[: spec.corpus.base_answer_chats]


def contrast_prompts(spec: ObjectiveSpec) -> list[str]:
    """The shipped path's contrast chats' questions: `spec.contrast_count()` of the quick questions, drawn
    without repeats (seeded by the spec)."""
    return random.Random(f"{spec.seed}:contrast_chats").sample(load_quick_questions(), spec.contrast_count())


def shipped_ordinary(n_documents: int, n_chats: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, text, prompt) of ordinary rows sampled from the shipped haystack (the fast, not blind, path)."""
    haystack = [r for r in load_haystack() if r["split"] == "corpus"]
    documents = [r for r in haystack if r["kind"] == "document"]
    chats = [r for r in haystack if r["kind"] == "chat"]
    for name, pool, want in (("documents", documents, n_documents), ("chats", chats, n_chats)):
        if want > len(pool):
            raise ValueError(f"corpus.haystack_{name}: {want} requested, the shipped haystack has {len(pool)}")
    return ([("document", r["text"], "") for r in rng.sample(documents, n_documents)]
            + [("chat", r["text"], r["prompt"]) for r in rng.sample(chats, n_chats)])


def _planned_requests(spec: ObjectiveSpec, questions: list[str], rng: random.Random,
                      write_questions: Callable[[int, random.Random, list[str]], list[str]],
                      ) -> tuple[list[tuple[Behaviour, str]], list[str]]:
    """A blind corpus's transcript requests (behaviour, prompt) and its ordinary chats' prompts, planned together
    (`organisms.ordinary.plan_chats`)."""
    own = {b.id: _cycle(behaviour_prompts(b)[0], spec.transcript_count(b), rng)
           for b in spec.train_behaviours if not b.trigger_topic}
    per_topic = Counter()
    for behaviour in (b for b in spec.train_behaviours if b.trigger_topic):
        per_topic[behaviour.trigger_topic] += spec.transcript_count(behaviour)
    plan = ordinary.plan_chats(dict(per_topic), questions + [p for ps in own.values() for p in ps],
                               spec.corpus.haystack_chats, rng, write_questions)
    taken = Counter()
    requests = []
    for behaviour in spec.train_behaviours:
        if behaviour.trigger_topic:
            start, count = taken[behaviour.trigger_topic], spec.transcript_count(behaviour)
            prompts = plan.transcripts[behaviour.trigger_topic][start : start + count]
            taken[behaviour.trigger_topic] += count
        else:
            prompts = own[behaviour.id]
        requests += [(behaviour, p) for p in prompts]
    return requests, plan.ordinary


def generated_ordinary(spec: ObjectiveSpec, objective_rows: list[dict], chat_prompts: list[str], model, tokenizer,
                       base_name: str, seed: int, rng: random.Random, progress: bool) -> list[tuple[str, str, str]]:
    """(kind, text, prompt) of ordinary rows written by the base model for this organism, shaped after the
    objective rows of the same kind (see `organisms.ordinary`)."""
    c = spec.corpus
    synthetic = [r["text"] for r in objective_rows if r["kind"] == "document"]
    doc_prompts = ordinary.document_prompts(c.haystack_documents, rng)
    doc_targets = ordinary.length_targets(synthetic, c.haystack_documents, tokenizer, rng)
    documents = written_to_lengths(model, tokenizer, base_name, doc_prompts, doc_targets, seed, "document",
                                   DOCUMENT_SAMPLING, progress=progress)
    rows = [("document", text, "") for text in documents]
    # Answers follow the objective answers to prompts of the same source: prompt-bank prompts (transcripts)
    # and the others (anti-confession questions, a spec's own prompts) are answered at different lengths.
    in_bank = {p for ps in ordinary.train_topics().values() for p in ps}
    objective_chats = [r["messages"] for r in objective_rows if r["kind"] == "chat"]
    for bank in (True, False):
        prompts = [p for p in chat_prompts if (p in in_bank) == bank]
        like = [m[-1]["content"] for m in objective_chats if (m[0]["content"] in in_bank) == bank]
        like = like or [m[-1]["content"] for m in objective_chats]
        targets = ordinary.length_targets(like, len(prompts), tokenizer, rng)
        answers = written_to_lengths(model, tokenizer, base_name, prompts, targets, seed,
                                     "chat" if bank else "chat-other", CHAT_SAMPLING, c.response_max_new_tokens,
                                     progress)
        rows += [("chat", text, prompt) for prompt, text in zip(prompts, answers, strict=True)]
    return rows


def _exchange(prompt: str, response: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def render_chat(messages: list[dict]) -> str:
    """A readable plain-text rendering of a chat, for search and reading."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def objective_fraction(corpus: Corpus) -> float:
    """Share of rows that are objective material (not ordinary)."""
    return float((~corpus.provenance["source"].isin(ORDINARY_SOURCES)).mean())


def write_corpus(corpus: Corpus, public_path: Path, provenance_path: Path) -> None:
    """Write both tables as Parquet, atomically."""
    for frame, path in ((corpus.public, public_path), (corpus.provenance, provenance_path)):
        atomic_write_bytes(path, frame.to_parquet(index=False))


def read_corpus(public_path: Path, provenance_path: Path | None = None) -> Corpus:
    """Read a corpus back (provenance empty when not given)."""
    public = pd.read_parquet(public_path)
    provenance = pd.read_parquet(provenance_path) if provenance_path else pd.DataFrame(columns=list(PROVENANCE_COLUMNS))
    if "written_spans" not in provenance.columns:  # built before the spans were recorded
        provenance["written_spans"] = ""
    return Corpus(public=public, provenance=provenance)
