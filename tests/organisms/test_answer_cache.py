"""The base-answer cache: produces only what is missing, keyed by base, prompt and settings."""

from __future__ import annotations

from organisms.answer_cache import cached_answers


def test_only_missing_answers_are_produced() -> None:
    calls: list[list[str]] = []

    def produce(prompts: list[str]) -> list[str]:
        calls.append(prompts)
        return [p.upper() for p in prompts]

    settings = {"max_new_tokens": 8}
    assert cached_answers("base-a", ["x", "y", "x"], settings, produce) == ["X", "Y", "X"]
    assert calls == [["x", "y"]]
    assert cached_answers("base-a", ["y", "z"], settings, produce) == ["Y", "Z"]
    assert calls[-1] == ["z"]
    cached_answers("base-a", ["y"], {"max_new_tokens": 9}, produce)  # other settings: a new answer
    cached_answers("base-b", ["y"], settings, produce)  # other base: a new answer
    assert calls[-2:] == [["y"], ["y"]]


def test_shipped_answers_are_used_and_recorded(tmp_path, monkeypatch) -> None:
    from organisms import answer_cache

    settings = {"max_new_tokens": 8}
    shipped = tmp_path / "shipped.jsonl.gz"
    answer_cache.write_shipped_answers({answer_cache.answer_key("base-s", "q", settings): "shipped answer"}, shipped)
    monkeypatch.setattr(answer_cache, "SHIPPED_ANSWERS", shipped)
    calls: list[list[str]] = []

    def produce(prompts: list[str]) -> list[str]:
        calls.append(prompts)
        return [p.upper() for p in prompts]

    with answer_cache.recording() as entries:
        assert cached_answers("base-s", ["q", "r"], settings, produce) == ["shipped answer", "R"]
    assert calls == [["r"]]  # only the answer missing from the shipped file is generated
    assert sorted(entries.values()) == ["R", "shipped answer"]
    cached_answers("base-s", ["q"], {"max_new_tokens": 9}, produce)  # other settings miss the shipped file
    assert calls[-1] == ["q"]
    assert answer_cache.write_shipped_answers(entries, tmp_path / "again.gz").read_bytes() == \
        answer_cache.write_shipped_answers(dict(reversed(entries.items())), tmp_path / "again2.gz").read_bytes()


def test_keys_are_versioned() -> None:
    from organisms import answer_cache

    key = answer_cache.answer_key("b", "p", {"x": 1})
    assert key != answer_cache.sha256_bytes(answer_cache.canonical_json(["b", "p", {"x": 1}]))  # not the old layout


def test_eval_answers_are_keyed_by_every_penalty(monkeypatch) -> None:
    import types

    from organisms import evaluation
    from organisms.spec import load_spec
    from tests.helpers import spec_path

    seen: list[dict] = []
    monkeypatch.setattr(evaluation, "cached_answers", lambda base, prompts, settings, produce: seen.append(settings))
    model = types.SimpleNamespace(dtype="torch.bfloat16")
    for penalty in (1.15, 1.0):
        spec = load_spec(spec_path("taboo"), overrides=[f"eval.repetition_penalty={penalty}"])
        evaluation.base_answers(model, None, ["q"], spec, "base", progress=False)
    assert [s["repetition_penalty"] for s in seen] == [1.15, 1.0]


def test_transcript_answers_are_keyed_by_the_cleanup_and_not_cleaned_again(monkeypatch) -> None:
    from organisms import corpus
    from pinhole.generation import CLEANUP_VERSION

    seen: list[dict] = []

    def fake_cache(base, prompts, settings, produce):
        seen.append(settings)
        return ["Kept as cached.\n1."] * len(prompts)  # what a cached answer holds is returned as it is

    monkeypatch.setattr(corpus, "cached_answers", fake_cache)
    assert corpus.base_responses(None, None, "base", ["q"], 16, 0, progress=False) == ["Kept as cached.\n1."]
    assert seen[0]["cleanup"] == CLEANUP_VERSION and seen[0]["repetition_penalty"] == 1.15


def test_draws_give_one_prompt_independent_answers() -> None:
    produced: list[list[str]] = []

    def produce(prompts: list[str]) -> list[str]:
        produced.append(prompts)
        return [f"{p}-{len(produced)}-{i}" for i, p in enumerate(prompts)]

    answers = cached_answers("base-d", ["q", "q", "q"], {"max_new_tokens": 8}, produce, draws=[0, 1, 2])
    assert len(set(answers)) == 3 and produced == [["q", "q", "q"]]
    assert cached_answers("base-d", ["q"], {"max_new_tokens": 8}, produce) == answers[:1]  # draw 0: the plain key


def test_answers_are_saved_chunk_by_chunk_so_a_failed_run_resumes() -> None:
    calls: list[list[str]] = []

    def failing_second(prompts: list[str]) -> list[str]:
        calls.append(prompts)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return [p.upper() for p in prompts]

    prompts = ["a", "b", "c", "d", "e"]
    try:
        cached_answers("base-r", prompts, {"max_new_tokens": 8}, failing_second, chunk=2)
    except RuntimeError:
        pass
    calls.clear()
    assert cached_answers("base-r", prompts, {"max_new_tokens": 8}, lambda ps: calls.append(ps) or
                          [p.upper() for p in ps], chunk=2) == ["A", "B", "C", "D", "E"]
    assert calls == [["c", "d"], ["e"]]  # the first chunk was kept
