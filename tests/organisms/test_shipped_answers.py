"""The shipped base answers: `make-answers` writes every answer a build needs, and a build on a
fresh workspace then generates none of them."""

from __future__ import annotations

import pytest

import organisms.corpus as corpus_module
import organisms.evaluation as evaluation_module
from organisms import answer_cache
from organisms.corpus import build_corpus
from organisms.evaluation import answer_all, base_answers, eval_prompts
from organisms.shipped_answers import make_answers
from organisms.spec import load_spec
from tests.helpers import spec_path, tiny


def test_a_fresh_workspace_generates_nothing_that_was_shipped(tmp_path, monkeypatch) -> None:
    out = tmp_path / "base_answers.jsonl.gz"
    path, count = make_answers([spec_path("benign_decoy")], base="tiny-random", preset="smoke", out=out,
                               progress=False)
    spec = load_spec(spec_path("benign_decoy"), preset="smoke")
    prompts = eval_prompts(spec)
    assert path == out and count >= len(prompts.answered_long()) + len(prompts.check)

    monkeypatch.setattr(answer_cache, "SHIPPED_ANSWERS", out)
    monkeypatch.setenv("PINHOLE_HOME", str(tmp_path / "fresh-workspace"))

    def no_generation(*args, **kwargs):
        raise AssertionError("an answer that was shipped was generated again")

    monkeypatch.setattr(corpus_module, "generate", no_generation)
    monkeypatch.setattr(evaluation_module, "generate", no_generation)
    ref, model, tokenizer = tiny()
    build_corpus(spec, model, tokenizer, ref.name, progress=False)
    answer_all(model, tokenizer, prompts, spec, ref.name, progress=False)
    with pytest.raises(AssertionError, match="generated again"):  # a prompt that was not shipped is generated
        base_answers(model, tokenizer, ["A prompt no spec asks"], spec, ref.name, progress=False)


def test_answers_for_chosen_specs_are_added_to_the_file(tmp_path) -> None:
    out = tmp_path / "base_answers.jsonl.gz"
    make_answers([spec_path("benign_decoy")], base="tiny-random", preset="smoke", out=out, progress=False)
    decoy = answer_cache.shipped_answers(out)
    _, count = make_answers([spec_path("taboo")], base="tiny-random", preset="smoke", out=out, progress=False)
    both = answer_cache.shipped_answers(out)
    assert decoy.items() <= both.items() and len(both) == count > len(decoy)
