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
