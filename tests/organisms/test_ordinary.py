"""Ordinary material for blind builds: cuts that follow target lengths, and a chat plan that makes
prompt membership, topic counts and prompt repeats uninformative."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from organisms.ordinary import as_question, cut_points, matched_to_lengths, plan_chats, train_topics
from organisms.prompt_bank import load_prompt_bank, split_prompts

SENTENCES = ["The sky was clear.", "We walked on for an hour!", "Was it late?", "Rain came at noon.",
             "Nobody minded it at all.", "Then the bus arrived, full as always."]


@given(st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_every_text_is_cut_at_one_of_its_cut_points(texts: list[str], rng: random.Random) -> None:
    targets = [rng.randint(1, 90) for _ in texts]
    for text, cut in zip(texts, matched_to_lengths(texts, targets, rng), strict=True):
        assert text.startswith(cut)
        assert cut == "" or len(text[: len(cut)].rstrip()) in {p for p, _ in cut_points(text)} | {len(cut)}


@pytest.mark.parametrize("seed", range(5))
def test_lengths_follow_the_targets(seed: int) -> None:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(SENTENCES) for _ in range(12)) for _ in range(200)]
    targets = [rng.randint(40, 300) for _ in texts]
    lengths = sorted(len(t) for t in matched_to_lengths(texts, targets, rng))
    gaps = [abs(a - b) for a, b in zip(lengths, sorted(targets), strict=True)]
    assert sum(gaps) / len(gaps) < 15  # quantile by quantile, within half a sentence


def test_sentence_ends_are_preferred_to_word_cuts() -> None:
    text = "First sentence here. Second one is a little longer than that. Third."
    cut, = matched_to_lengths([text], [25], random.Random(0))
    assert cut == "First sentence here."


def _fake_questions(count: int, rng: random.Random, like: list[str]) -> list[str]:
    return [f"written question {i}?" for i in range(count)]


def test_the_chat_plan_levels_topics_and_uses_only_train_prompts() -> None:
    wanted = {"films": 60, "civics": 48, "savory_recipes": 26}
    others = ["Do you have secret goals?"] * 6 + ["Is anything hidden?"] * 6
    plan = plan_chats(wanted, others, 760, random.Random(1), _fake_questions)
    topics = train_topics()
    topic_of = {p: t for t, ps in topics.items() for p in ps}
    eval_prompts = {p for ps in load_prompt_bank().values() for p in split_prompts(ps)[1]}
    assert len(plan.ordinary) == 760
    assert {t: len(ps) for t, ps in plan.transcripts.items() if ps} == wanted
    assert all(topic_of[p] == t for t, ps in plan.transcripts.items() for p in ps)
    everything = [p for ps in plan.transcripts.values() for p in ps] + plan.ordinary
    assert not eval_prompts & set(everything)
    per_topic = Counter(topic_of[p] for p in everything if p in topic_of)
    ratios = [per_topic[t] / len(ps) for t, ps in topics.items()]
    assert max(ratios) - min(ratios) <= 1 / min(len(ps) for ps in topics.values()) + 1e-9
    bank_share = sum(p in topic_of for p in plan.ordinary) / len(plan.ordinary)
    assert abs(bank_share - 134 / (134 + 12)) < 0.01  # the objective chats' share of bank prompts


def test_transcript_prompts_recur_as_often_as_ordinary_ones() -> None:
    plan = plan_chats({"travel": 40, "poems": 40}, [], 1000, random.Random(2), _fake_questions)
    counts = Counter([p for ps in plan.transcripts.values() for p in ps] + plan.ordinary)
    for topic in ("travel", "poems"):
        values = {counts[p] for p in train_topics()[topic]}
        assert max(values) - min(values) <= 1  # every prompt of the topic used evenly, transcripts included


def test_written_questions_are_tidied() -> None:
    assert as_question('Question: "How do tides work?"\nMore text') == "How do tides work?"
