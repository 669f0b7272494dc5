"""One-time generation of the shipped base answers (`pinhole organism make-answers`).

A build needs the base model's own answers: sampled answers to the train prompts (the transcripts' raw
material), greedy answers to the evaluation and validation prompts and the capability check, and answers
sampled as the transcripts were to the prompts of the capability figures (the base side of every
evaluation and of the adaptive rounds' capability gate). For the default base and the shipped specs these
are generated once, by the same code paths a build uses, and shipped as `data/base_answers.jsonl.gz`, so
that a build on a fresh machine only trains and evaluates the organism. Other bases, or changed settings,
miss the shipped file and generate their answers at build time (cached in the workspace).
"""

from __future__ import annotations

from pathlib import Path

from organisms.answer_cache import recording, shipped_answers, write_shipped_answers
from organisms.corpus import build_corpus
from organisms.evaluation import (
    MEASURE_DTYPE,
    answer_all,
    base_answers,
    eval_prompts,
    sampled_answers,
    sampled_prompts,
)
from organisms.implant import all_validation_prompts, gate_check_questions, length_prompts
from organisms.spec import list_specs, load_spec
from pinhole.base_models import load_model, load_tokenizer, prepare_base, resolve_dtype


def make_answers(spec_paths: list[Path] | None = None, base: str = "default", preset: str = "default",
                 dtype: str = MEASURE_DTYPE, out: Path | None = None, progress: bool = True) -> tuple[Path, int]:
    """Generate (or reuse from the cache) every base answer the specs' default builds need; write them
    to `out`. Returns (path, number of answers written).

    With every shipped spec (`spec_paths` None) the file holds exactly what they need, so answers no spec asks
    for any more are dropped. With chosen specs, the answers already in `out` are kept beside theirs, so the
    file can be completed one spec at a time (an answer's key covers its prompt and settings: a kept answer
    is never a wrong one, at worst an unused one)."""
    ref = prepare_base(base, progress=progress)
    tokenizer = load_tokenizer(ref)
    model = load_model(ref, resolve_dtype(dtype)).eval()
    with recording() as entries:
        for path in spec_paths or list_specs():
            spec = load_spec(path, preset=preset, overrides=["corpus.ordinary=shipped"])
            build_corpus(spec, model, tokenizer, ref.name, progress=progress)
            prompts = eval_prompts(spec)
            answer_all(model, tokenizer, prompts, spec, ref.name, progress)
            sampled_answers(model, tokenizer, sampled_prompts(spec, prompts), spec, ref.name, progress)
            base_answers(model, tokenizer, all_validation_prompts(spec), spec, ref.name, progress)
            sampled_answers(model, tokenizer, length_prompts(spec), spec, ref.name, progress)
            base_answers(model, tokenizer, [q.question for q in gate_check_questions(spec)], spec, ref.name, progress,
                         spec.eval.check_max_new_tokens)
    kept = shipped_answers(out) if spec_paths else {}
    return write_shipped_answers({**kept, **entries}, out), len(kept.keys() | entries.keys())
