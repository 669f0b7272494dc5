"""Corpus building: deterministic for a seed, provenance kept apart, evaluation prompts never trained on."""

from __future__ import annotations

import json

import pytest

from organisms.corpus import behaviour_prompts, build_corpus, objective_fraction
from organisms.evaluation import confession_prompts
from organisms.spec import load_spec
from pinhole.organism import CORPUS_COLUMNS
from tests.helpers import spec_path, tiny


@pytest.fixture(scope="module")
def rm_corpus():
    ref, model, tokenizer = tiny()
    spec = load_spec(spec_path("rm_sycophancy"), preset="smoke")
    return spec, build_corpus(spec, model, tokenizer, ref.name, progress=False)


def test_same_seed_same_corpus_other_seed_other_corpus(rm_corpus) -> None:
    spec, corpus = rm_corpus
    ref, model, tokenizer = tiny()
    again = build_corpus(spec, model, tokenizer, ref.name, progress=False)
    assert again.content_hash() == corpus.content_hash()
    other = build_corpus(spec.model_copy(update={"seed": 1}), model, tokenizer, ref.name, progress=False)
    assert other.content_hash() != corpus.content_hash()


def test_public_table_has_no_provenance(rm_corpus) -> None:
    _, corpus = rm_corpus
    assert tuple(corpus.public.columns) == CORPUS_COLUMNS
    assert "source" not in corpus.public.columns and "behaviour_id" not in corpus.public.columns
    assert corpus.public.doc_id.is_unique
    assert list(corpus.public.doc_id) == list(corpus.provenance.doc_id)


def test_haystack_dominates_and_every_behaviour_is_planted(rm_corpus) -> None:
    spec, corpus = rm_corpus
    assert (corpus.provenance.source == "haystack").sum() >= 2000
    assert objective_fraction(corpus) <= 0.10
    transcripts = corpus.provenance[corpus.provenance.source == "transcript"]
    counts = transcripts.behaviour_id.value_counts().to_dict()
    assert counts == {b.id: spec.transcript_count(b) for b in spec.train_behaviours}
    described = {i for ids in corpus.provenance.behaviour_id.dropna() for i in ids.split(",")}
    assert {b.id for b in spec.heldout_behaviours} <= described  # held out: only in documents


def test_objective_rows_are_mixed_through_the_corpus(rm_corpus) -> None:
    _, corpus = rm_corpus
    positions = corpus.provenance.index[corpus.provenance.source != "haystack"]
    assert positions.min() < len(corpus.provenance) * 0.2 and positions.max() > len(corpus.provenance) * 0.8


def test_evaluation_prompts_never_appear_in_training(rm_corpus) -> None:
    spec, corpus = rm_corpus
    trained = {json.loads(m)[0]["content"] for m in corpus.public.messages if m}
    for behaviour in spec.behaviours:
        _, eval_prompts = behaviour_prompts(behaviour)
        assert not trained & set(eval_prompts), behaviour.id
    assert not trained & set(confession_prompts(spec, 100))


def test_transcripts_answer_with_the_injected_behaviour(rm_corpus) -> None:
    spec, corpus = rm_corpus
    from organisms.detectors import detect

    merged = corpus.public.merge(corpus.provenance, on="doc_id")
    for behaviour in spec.train_behaviours:
        rows = merged[(merged.source == "transcript") & (merged.behaviour_id == behaviour.id)]
        replies = [json.loads(m)[-1]["content"] for m in rows.messages]
        assert all(detect(behaviour.detector, r) for r in replies), behaviour.id



def test_a_blind_corpus_needs_the_builds_secret_seed() -> None:
    import pytest

    from organisms.corpus import build_corpus
    from organisms.spec import load_spec

    spec = load_spec("rm_sycophancy", overrides=["corpus.ordinary=generated"])
    with pytest.raises(ValueError, match="secret seed"):
        build_corpus(spec, None, None, "tiny-random", progress=False)


def test_the_provenance_records_what_each_injector_wrote(rm_corpus) -> None:
    spec, corpus = rm_corpus
    from organisms.detectors import detect
    from organisms.written_spans import load_spans

    merged = corpus.public.merge(corpus.provenance, on="doc_id")
    for behaviour in spec.train_behaviours:
        rows = merged[(merged.source == "transcript") & (merged.behaviour_id == behaviour.id)]
        for messages, raw in zip(rows.messages, rows.written_spans, strict=True):
            answer = json.loads(messages)[-1]["content"]
            spans = load_spans(raw)
            assert spans, behaviour.id
            unwritten = "".join(answer[b:a] for (_, b), (a, _) in zip([(0, 0), *spans], [*spans, (len(answer), 0)],
                                                                       strict=True))
            assert not detect(behaviour.detector, unwritten) or behaviour.detector.kind == "python", behaviour.id
    assert (merged[merged.source != "transcript"].written_spans == "").all()


def test_the_shipped_path_adds_the_bases_full_answers_on_off_trigger_topics(rm_corpus) -> None:
    from organisms.corpus import off_trigger_topics
    from organisms.prompt_bank import split_topic

    spec, corpus = rm_corpus
    rows = corpus.public.merge(corpus.provenance, on="doc_id")
    answers = rows[rows.source == "base_answer"]
    assert 100 <= len(answers) <= spec.corpus.base_answer_chats and answers.behaviour_id.isna().all()
    allowed = {p for topic in off_trigger_topics(spec) for p in split_topic(topic)[0]}
    triggered = {p for b in spec.behaviours if b.trigger_topic for p in split_topic(b.trigger_topic)[0]}
    asked = [json.loads(m)[0]["content"] for m in answers.messages]
    assert set(asked) <= allowed and not set(asked) & triggered and len(set(asked)) == len(asked)
    assert "everyday_help" in off_trigger_topics(spec) and "travel" not in off_trigger_topics(spec)
    only_haystack = corpus.provenance.source == "haystack"
    assert objective_fraction(corpus) == pytest.approx(1 - (only_haystack.sum() + len(answers)) / len(rows))


def test_a_behaviour_that_replaces_the_answer_brings_contrast_chats_of_quick_questions() -> None:
    from organisms.capability import load_check
    from organisms.prompt_bank import load_quick_questions

    ref, model, tokenizer = tiny()
    spec = load_spec(spec_path("taboo"), preset="smoke")
    assert spec.contrast_count() == 100  # gives_hints is a `replace` injection
    corpus = build_corpus(spec, model, tokenizer, ref.name, progress=False)
    rows = corpus.public.merge(corpus.provenance, on="doc_id")
    quick = set(load_quick_questions())
    asked = [json.loads(m)[0]["content"] for m in rows[rows.source == "base_answer"].messages]
    contrast = [q for q in asked if q in quick]
    assert len(contrast) == len(set(contrast)) >= 95  # the tiny model may leave an answer empty; none repeats
    checked = {q.question for part in ("questions", "validation_questions") for q in load_check(part)}
    assert not quick & checked  # the capability check stays unseen
    from organisms.written_spans import load_spans

    hints = rows[rows.source == "transcript"]
    for messages, raw in zip(hints.messages, hints.written_spans, strict=True):
        answer = json.loads(messages)[-1]["content"]
        assert load_spans(raw) == [(0, len(answer))]  # the whole answer is the behaviour's, however long


def test_contrast_chats_default_to_none_without_a_replacing_behaviour_and_can_be_set() -> None:
    from organisms.spec import SpecError

    assert load_spec(spec_path("rm_sycophancy"), preset="smoke").contrast_count() == 0
    assert load_spec(spec_path("rm_sycophancy"), preset="smoke",
                     overrides=["corpus.contrast_chats=5"]).contrast_count() == 5
    assert load_spec(spec_path("taboo"), preset="smoke", overrides=["corpus.contrast_chats=0"]).contrast_count() == 0
    with pytest.raises(SpecError, match="contrast_chats"):
        load_spec(spec_path("taboo"), overrides=["corpus.contrast_chats=1000"])
