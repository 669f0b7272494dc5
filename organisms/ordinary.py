"""Ordinary material for a blind organism: documents and chats written per organism, with a secret seed.

A blind build takes none of its ordinary rows from a file Pinhole ships (a team holding the package
would find the objective rows by set difference). The base model writes them at build time, seeded
from the build's secret salt, and they are shaped so that no public column tells them apart from
the objective rows of the same kind:

- documents are written on the shipped subjects in the haystack's genres, generated long enough and
  cut at sentence ends so that their lengths follow the synthetic documents' lengths;
- chats take the same share of prompt-bank prompts as the objective chats (the others are questions
  the base model writes), only train-split prompts, and fill the topics so that every topic's total
  count of chats is proportional to its number of train prompts: a topic that carries transcripts
  has no more chats than any other, and within a topic every prompt is used about equally often.
  Their answers are cut so that their lengths follow the objective chats' answers.

Every answer is the base model's own (sampled, cleaned, cached per row in the workspace, resumable).
"""

from __future__ import annotations

import bisect
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from organisms.answer_cache import cached_answers
from organisms.haystack import DOCUMENT_GENRES, DOCUMENT_MAX_NEW_TOKENS, load_subjects
from organisms.prompt_bank import load_prompt_bank, split_prompts
from pinhole.generation import CLEANUP_VERSION, chat_texts, clean_response, generate
from pinhole.sampling import SAMPLER_VERSION
from pinhole.workspace import canonical_json, sha256_bytes

# The base writes documents and answers chats as in the shipped haystack (`organisms.haystack`: DOCUMENT_SAMPLING,
# CHAT_SAMPLING): answers sampled differently would differ in style and in likelihood under the base.
NATURAL_BUDGET = DOCUMENT_MAX_NEW_TOKENS  # new tokens for a document without a length to match
MAX_BUDGET = 512
BATCH_SIZE = 64  # rows per generation batch: faster per row than 16 or 32 on 2 CPU cores
CUT_PENALTY = (0.0, 0.25, 0.5)  # extra cost, as a share of the length wanted: sentence end, word end, inside a word
_SENTENCE_END = re.compile(r"[.!?:;)\]\"'*](?=\s)|\n")


@dataclass(frozen=True)
class LengthTarget:
    """A row's length to match: characters, and the tokens the reference text took."""

    chars: int
    tokens: int


def cut_points(text: str) -> list[tuple[int, int]]:
    """(length, kind) of every place `text` may end: 0 after a sentence end or a line or at its full length,
    1 after any word, 2 anywhere else (text without spaces)."""
    clean = {match.end() for match in _SENTENCE_END.finditer(text + " ")} | {len(text)}
    words = {match.start() for match in re.finditer(r"\s", text)} - clean
    anywhere = set(range(1, len(text))) - clean - words
    return sorted([(p, 0) for p in clean if 0 < p <= len(text)] + [(p, 1) for p in words if p > 0]
                  + [(p, 2) for p in anywhere])


def matched_to_lengths(texts: Sequence[str], targets: Sequence[int], rng: random.Random) -> list[str]:
    """Cut every text at one of its `cut_points` so that the lengths, taken together, follow `targets`.

    Each text takes the remaining target nearest to one of its cut points, and that target is used up;
    shorter texts choose first (they fit the fewest targets). A cut after a word costs `CUT_PENALTY[1]`
    of the target's length more than a cut after a sentence, a cut inside a word `CUT_PENALTY[2]`: a
    sentence end is taken unless a word end is much nearer the length wanted.
    """
    if len(targets) != len(texts):
        raise ValueError(f"targets: {len(targets)} given for {len(texts)} texts")
    remaining = sorted(targets)
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), rng.random()))
    out = [""] * len(texts)
    for index in order:
        best: tuple[float, int, int] | None = None  # (cost, cut, position in remaining)
        for cut, kind in cut_points(texts[index]) or [(0, 0)]:
            at = bisect.bisect_left(remaining, cut)
            for position in (at - 1, at):
                if 0 <= position < len(remaining):
                    cost = abs(cut - remaining[position]) + CUT_PENALTY[kind] * remaining[position]
                    if best is None or cost < best[0]:
                        best = (cost, cut, position)
        assert best is not None
        _, cut, position = best
        del remaining[position]
        out[index] = texts[index][:cut].rstrip()
    return out


def length_targets(reference: Sequence[str], count: int, tokenizer, rng: random.Random) -> list[LengthTarget | None]:
    """`count` lengths drawn (with replacement) from the reference texts; all None without a reference."""
    if not reference:
        return [None] * count
    measured = [LengthTarget(len(t), len(tokenizer(t, add_special_tokens=False).input_ids)) for t in reference]
    return [rng.choice(measured) for _ in range(count)]


def budget(target: LengthTarget | None, natural: int = NATURAL_BUDGET) -> int:
    """New tokens to generate for a target (`natural` without one): enough to overshoot it, rounded up so
    rows batch together."""
    if target is None:
        return natural
    return min(MAX_BUDGET, 16 * math.ceil((target.tokens * 1.3 + 8) / 16))


def written_to_lengths(model, tokenizer, base_name: str, prompts: list[str], targets: list[LengthTarget | None],
                       seed: int, use: str, sampling: dict[str, float], natural_budget: int = NATURAL_BUDGET,
                       progress: bool = True, tidy: Callable[[str], str] | None = None) -> list[str]:
    """The base model's answers to `prompts`, each generated to overshoot its target; the answers with a
    target are then cut (`matched_to_lengths`) so that their lengths follow the targets'.

    Every row is its own draw (two rows with the same prompt get different answers); answers are cached
    per row, keyed by `seed`, so an interrupted build resumes without regenerating them. `tidy` edits
    each answer before it is cut.
    """
    answers: list[str] = [""] * len(prompts)
    rng = random.Random(seed)
    by_budget: dict[int, list[int]] = {}
    for index, target in enumerate(targets):
        by_budget.setdefault(budget(target, natural_budget), []).append(index)
    for max_new_tokens, rows in sorted(by_budget.items()):
        settings = {"use": use, "max_new_tokens": max_new_tokens, "seed": seed, **sampling,
                    "sampler": SAMPLER_VERSION, "cleanup": CLEANUP_VERSION}

        def produce(todo: list[str], max_new_tokens: int = max_new_tokens) -> list[str]:
            chunk_seed = int(sha256_bytes(canonical_json([seed, use, todo]))[:8], 16)
            raw = generate(model, tokenizer, chat_texts(tokenizer, todo), max_new_tokens=max_new_tokens,
                           batch_size=BATCH_SIZE, do_sample=True, sampler="nucleus", seed=chunk_seed, progress=progress,
                           description=f"Writing {use}s ({max_new_tokens} new tokens)", **sampling)
            return [clean_response(a) for a in raw]

        texts = cached_answers(base_name, [prompts[i] for i in rows], settings, produce, draws=[i + 1 for i in rows])
        for index, text in zip(rows, texts, strict=True):
            answers[index] = tidy(text) if tidy else text
    with_targets = [i for i, target in enumerate(targets) if target is not None]
    matched = matched_to_lengths([answers[i] for i in with_targets], [targets[i].chars for i in with_targets], rng)
    for index, text in zip(with_targets, matched, strict=True):
        answers[index] = text
    return answers


QUESTION_REQUEST = "Write one question that a curious person might ask an assistant about {subject}. Reply with the " \
                   "question only."


def question_requests(count: int, rng: random.Random) -> list[str]:
    """Requests for the base model to write `count` user questions, each on a shipped subject."""
    subjects = load_subjects()
    return [QUESTION_REQUEST.format(subject=rng.choice(subjects)) for _ in range(count)]


def as_question(text: str) -> str:
    """A written question tidied into a prompt: its first non-empty line, without quotes or a label."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())
    line = re.sub(r"^(question|q)\s*[:.]\s*", "", line, flags=re.IGNORECASE).strip().strip("\"'").strip()
    return line or text.strip()


def document_prompts(count: int, rng: random.Random) -> list[str]:
    """Requests for ordinary documents: a haystack genre on a shipped subject."""
    subjects = load_subjects()
    return [rng.choice(DOCUMENT_GENRES).format(subject=rng.choice(subjects)) for _ in range(count)]


def train_topics() -> dict[str, list[str]]:
    """Topic -> the prompt bank's train-split prompts (evaluation prompts are never trained on)."""
    return {topic: split_prompts(prompts)[0] for topic, prompts in load_prompt_bank().items()}


@dataclass(frozen=True)
class ChatPlan:
    """The prompts of a blind corpus's chats: each topic's transcript prompts, and the ordinary chats' prompts."""

    transcripts: dict[str, list[str]]
    ordinary: list[str]


def _even_uses(prompts: list[str], total: int, rng: random.Random) -> list[str]:
    """`total` uses of `prompts`, each used as often as any other (give or take one), in random order."""
    uses = prompts * (total // len(prompts)) + rng.sample(prompts, total % len(prompts))
    rng.shuffle(uses)
    return uses


def plan_chats(transcripts_per_topic: dict[str, int], other_prompts: Sequence[str], n_ordinary: int,
               rng: random.Random, write_questions: Callable[[int, random.Random, list[str]], list[str]]) -> ChatPlan:
    """Plan the prompts of every chat so that prompt membership, topic counts and prompt repeats say nothing.

    `transcripts_per_topic`: transcripts wanted on each prompt-bank topic; `other_prompts`: the objective
    chats' prompts from outside the bank (anti-confession questions, a spec's own trigger prompts).
    Ordinary chats take the bank's share of the objective chats; the topics are filled until every topic's
    count is proportional to its number of train prompts; within a topic the prompts are used evenly and
    the transcripts take random uses among them (so a transcript's prompt recurs as often as an ordinary
    chat's). The remaining ordinary chats get questions from `write_questions(n, rng, like)`, repeated as
    often as `other_prompts` repeat theirs.
    """
    topics = train_topics()
    for topic, count in transcripts_per_topic.items():
        if count and not topics.get(topic):
            raise ValueError(f"trigger_topic {topic!r}: the prompt bank has no train prompts for it")
    in_bank = sum(transcripts_per_topic.values())
    share = in_bank / (in_bank + len(other_prompts)) if in_bank + len(other_prompts) else 1.0
    totals = Counter({t: n for t, n in transcripts_per_topic.items() if n})
    for _ in range(round(n_ordinary * share)):  # level every topic's count relative to its train prompts
        lowest = min((totals[t] + 1) / len(ps) for t, ps in topics.items() if ps)
        totals[rng.choice([t for t, ps in topics.items() if ps and (totals[t] + 1) / len(ps) == lowest])] += 1
    transcripts, ordinary = {}, []
    for topic in sorted(totals):
        uses = _even_uses(topics[topic], totals[topic], rng)
        wanted = transcripts_per_topic.get(topic, 0)
        transcripts[topic], ordinary = uses[:wanted], ordinary + uses[wanted:]
    n_other = n_ordinary - len(ordinary)
    if n_other:
        repeats = len(other_prompts) / len(set(other_prompts)) if other_prompts else 1.0
        wanted = max(1, math.ceil(n_other / repeats))
        written = write_questions(math.ceil(wanted * 1.25), rng, list(other_prompts))  # some come out alike
        pool = list(dict.fromkeys(q for q in written if q))[:wanted] or written[:1]
        ordinary += [pool[i % len(pool)] for i in range(n_other)]
    rng.shuffle(ordinary)
    return ChatPlan(transcripts=transcripts, ordinary=ordinary)
